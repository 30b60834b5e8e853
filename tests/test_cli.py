"""exporter/cli.py: the config the flags build, and the commands run as real processes."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import load, parse_args
from tests.support import ROOT, free_port, running_exporter, wait_until


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_flags_build_the_config():
    invocation = parse_args(
        ["--web.listen-address", "127.0.0.1:9999", "--no-collector.system", "--collector.process"]
    )
    assert invocation.command == "run"
    config = load(invocation)
    assert config.web.listen_address == "127.0.0.1:9999"
    assert not config.enabled("system") and config.enabled("process")


def test_no_config_file_means_defaults_on_loopback():
    config = load(parse_args([]))
    assert config.web.host == "127.0.0.1"
    assert config.enabled("system") and config.enabled("process")


def test_check_config_accepts_a_good_file(tmp_path):
    path = tmp_path / "good.yml"
    path.write_text(yaml.safe_dump({"scrape": {"default_timeout_seconds": 5}}))
    result = run_cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_rejects_a_bad_file_naming_key_and_problem(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("scrape:\n  default_timeout_secnds: 5\nweb:\n  listen_address: nowhere\n")
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert (
        "scrape.default_timeout_secnds: unknown key; did you mean 'default_timeout_seconds'"
        in result.stderr
    )
    assert "web.listen_address: 'nowhere' is not HOST:PORT" in result.stderr


def test_bad_config_does_not_start_the_server(tmp_path):
    port = free_port()
    path = tmp_path / "bad.yml"
    path.write_text("web: [not, a, mapping]\n")
    result = run_cli("--config", str(path), "--web.listen-address", f"127.0.0.1:{port}", timeout=30)
    assert result.returncode == 2 and "web: expected a mapping" in result.stderr


def test_invalid_listen_address_flag_is_refused():
    result = run_cli("--web.listen-address", "127.0.0.1:99999", timeout=30)
    assert result.returncode == 2
    assert "--web.listen-address: port 99999 is out of range" in result.stderr


def test_once_prints_one_scrape_in_text_format():
    result = run_cli("once", "--no-collector.process")
    assert result.returncode == 0, result.stderr
    families = {f.name for f in text_string_to_metric_families(result.stdout)}
    assert "system_cpu_percent" in families
    assert "process_cpu_seconds" not in families


def test_sighup_reloads_and_a_bad_file_keeps_the_old_config(tmp_path):
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump({"collectors": {"system": {"enabled": True}}}))

    def families(url):
        body = httpx.get(f"{url}/metrics").text
        return {f.name for f in text_string_to_metric_families(body)}

    with running_exporter(path) as (url, proc):
        assert "system_cpu_percent" in families(url)
        path.write_text(yaml.safe_dump({"collectors": {"system": {"enabled": False}}}))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "system_cpu_percent" not in families(url), what="reload on SIGHUP")
        path.write_text("collectors: {system: {enabled: maybe}}\n")
        proc.send_signal(signal.SIGHUP)

        def reload_failed():
            body = httpx.get(f"{url}/metrics").text
            return "afirgen_exporter_config_last_reload_successful 0.0" in body

        wait_until(reload_failed, what="the refused reload to show")
        assert "system_cpu_percent" not in families(url)
        assert proc.poll() is None


def test_reload_over_http_needs_the_lifecycle_flag(tmp_path):
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump({"collectors": {"system": {"enabled": True}}}))
    with running_exporter(path) as (url, _):
        assert httpx.post(f"{url}/-/reload").status_code == 403
    with running_exporter(path, "--web.enable-lifecycle") as (url, _):
        assert httpx.post(f"{url}/-/reload").status_code == 200


def test_help_lists_every_collector_flag_both_ways():
    from collectors.catalog import CATALOG

    result = run_cli("--help", timeout=30)
    assert result.returncode == 0
    for spec in CATALOG:
        assert f"--collector.{spec.name}" in result.stdout
        assert f"--no-collector.{spec.name}" in result.stdout
    assert "--web.enable-lifecycle" in result.stdout
