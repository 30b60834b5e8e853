"""The systemd unit of deploy/systemd/: `systemd-analyze verify` accepts it without a warning,
`systemd-analyze security --offline` rates it low exposure, it carries the usual hardening, and
its ExecReload (SIGHUP to the main PID) really makes a running exporter reload its config."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import ROOT, require_binary, running_exporter, wait_until

UNIT = ROOT / "deploy" / "systemd" / "afirgen-exporter.service"
INSTALLED_BINARY = "/opt/afirgen-exporter/bin/afirgen-exporter"
#: `systemd-analyze security` scores 0 (locked down) to 10; below 2 it says "OK".
MAX_EXPOSURE = 2.0


def service_section() -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return dict(parser["Service"])


def unit_with_real_binary(tmp_path: Path) -> Path:
    """The unit as shipped, but starting this checkout's exporter (verify checks that
    ExecStart is executable)."""
    binary = Path(sys.executable).with_name("afirgen-exporter")
    assert binary.exists(), binary
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_BINARY, str(binary)))
    return copy


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    analyzer = require_binary("systemd-analyze")
    return subprocess.run([analyzer, *map(str, args)], capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verify_accepts_the_unit_without_warnings(tmp_path: Path):
    result = analyze("verify", unit_with_real_binary(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""


def test_verify_reports_a_misspelt_directive(tmp_path: Path):
    unit = unit_with_real_binary(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict"))
    result = analyze("verify", unit)
    assert "Unknown key 'ProtectSystm'" in result.stderr


def test_security_exposure_is_low(tmp_path: Path):
    result = analyze("security", "--offline=yes", unit_with_real_binary(tmp_path))
    assert result.returncode == 0, result.stderr
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert score, result.stdout
    assert float(score.group(1)) <= MAX_EXPOSURE, result.stdout


def test_the_unit_carries_the_usual_hardening():
    service = service_section()
    expected = {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["ExecStart"].startswith(f"{INSTALLED_BINARY} --config ")


def test_exec_reload_makes_the_running_exporter_reload(tmp_path: Path):
    """What `systemctl reload` runs, with $MAINPID the exporter's PID: the config is read again
    (its collectors change), and the reload metrics say so."""
    config = tmp_path / "exporter.yml"
    config.write_text("collectors:\n  process: {enabled: false}\n")
    reload_command = service_section()["ExecReload"]
    with running_exporter(config) as (url, process):
        assert "process_cpu_seconds_total" not in httpx.get(f"{url}/metrics").text
        config.write_text("collectors:\n  process: {enabled: true}\n")
        argv = reload_command.replace("$MAINPID", str(process.pid)).split()
        assert argv[:2] == ["/bin/kill", "-HUP"] and shutil.which(argv[0])
        subprocess.run(argv, check=True, timeout=10)
        wait_until(
            lambda: "process_cpu_seconds_total" in httpx.get(f"{url}/metrics").text,
            timeout=20,
            what="the exporter to reload its config on SIGHUP",
        )
        metrics = httpx.get(f"{url}/metrics").text
        assert "afirgen_exporter_config_last_reload_successful 1.0" in metrics
        assert process.poll() is None  # reloaded, not restarted
