"""The shipped rules: generated from their table, valid, unit-tested per alert, documented.

promtool runs the unit tests in `alerts/tests/`; these tests also prove that every alert has a
case where it fires and one (past its `for`) where it does not, that the unit tests fail when
the alerts cannot fire, and that the example Prometheus and Alertmanager configs (under deploy/) load.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import build, thresholds
from tests.support import ROOT, require_binary

ALERTS_DIR = ROOT / "alerts"
PROMETHEUS_EXAMPLE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_EXAMPLE = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
UNIT_TESTS = sorted((ALERTS_DIR / "tests").glob("*_test.yml"))
SEVERITIES = {"critical", "warning", "info"}


def run(*args: str, cwd: Path = ALERTS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def load(name: str) -> dict:
    return yaml.safe_load((ALERTS_DIR / name).read_text())


def shipped_alerts() -> list[dict]:
    return [rule for group in load("afirgen.alerts.yml")["groups"] for rule in group["rules"]]


def duration_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", text))


def test_committed_rules_match_the_generator():
    for path, text in build.render().items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m alerts.build"


def test_promtool_accepts_every_yaml_file_of_the_rules_folder():
    """`promtool check rules alerts/*.yml`: the folder holds rule files only (the example
    Prometheus and Alertmanager configs live under deploy/)."""
    promtool = require_binary("promtool")
    files = sorted(p.name for p in ALERTS_DIR.glob("*.yml"))
    assert files == ["afirgen.alerts.yml", "afirgen.rules.yml"]
    result = run(promtool, "check", "rules", *files)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize("test_file", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path):
    promtool = require_binary("promtool")
    result = run(promtool, "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    firing: set[str] = set()
    quiet: set[str] = set()
    for_seconds = {a["alert"]: duration_seconds(a["for"]) for a in shipped_alerts()}
    for test_file in UNIT_TESTS:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                name = check["alertname"]
                if check.get("exp_alerts"):
                    firing.add(name)
                elif duration_seconds(check["eval_time"]) > for_seconds.get(name, 0):
                    quiet.add(name)  # quiet past its `for`: not merely pending
    names = set(for_seconds)
    assert names - firing == set(), "alerts without a case where they fire"
    assert names - quiet == set(), "alerts without a case (past `for`) where they stay quiet"


def test_unit_tests_fail_when_alerts_cannot_fire(tmp_path: Path):
    """Every unit-test file must catch alerts that never fire: its firing cases are real."""
    promtool = require_binary("promtool")
    (tmp_path / "tests").mkdir()
    shutil.copy(ALERTS_DIR / "afirgen.rules.yml", tmp_path)
    broken = load("afirgen.alerts.yml")
    for group in broken["groups"]:
        for rule in group["rules"]:
            rule["expr"] = "vector(1) > 2"
    (tmp_path / "afirgen.alerts.yml").write_text(yaml.safe_dump(broken))
    for test_file in UNIT_TESTS:
        shutil.copy(test_file, tmp_path / "tests")
        result = run(promtool, "test", "rules", f"tests/{test_file.name}", cwd=tmp_path)
        assert result.returncode != 0, f"{test_file.name} passes with alerts that never fire"


def test_every_alert_carries_what_operators_need():
    runbook = (ALERTS_DIR / "runbook.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^#{2,3} (\S+)\s*$", runbook, re.M)}
    for alert in shipped_alerts():
        name = alert["alert"]
        assert duration_seconds(alert["for"]) > 0, name
        assert alert["labels"]["severity"] in SEVERITIES, name
        notes = alert["annotations"]
        assert notes["summary"].strip(), name
        assert "{{ $labels." in notes["description"], name
        url = notes["runbook_url"]
        assert url.startswith(build.RUNBOOK_URL + "#"), name
        assert url.split("#", 1)[1] in anchors, f"{name}: no runbook section {url}"


def test_runbook_has_one_section_per_alert():
    runbook = (ALERTS_DIR / "runbook.md").read_text()
    sections = re.findall(r"^### (\S+)\s*$", runbook, re.M)
    assert sorted(sections) == sorted(a["alert"] for a in shipped_alerts())


def test_every_threshold_is_used_and_explained():
    table = thresholds.table()
    assert len(table) >= 40
    sources = " ".join(p.read_text() for p in (ALERTS_DIR / "areas").glob("*.py"))
    for name, threshold in table.items():
        assert len(threshold.why) > 20, f"{name}: say why"
        assert re.search(rf"\b{name}\b", sources), f"{name} is used by no rule"


def test_thresholds_are_typed_and_rendered_as_promql_wants():
    assert str(thresholds.minutes(15, "x")) == "15m"
    assert str(thresholds.hours(1, "x")) == "1h"
    assert str(thresholds.Duration(90, "x")) == "90s"
    assert str(thresholds.Ratio(0.05, "x")) == "0.05"
    assert str(thresholds.Level(900, "seconds", "x")) == "900"
    with pytest.raises(ValueError, match="between 0 and 1"):
        thresholds.Ratio(90, "a percent is not a ratio")
    with pytest.raises(ValueError, match="positive"):
        thresholds.minutes(0, "x")
    fors = {a["alert"]: a["for"] for a in shipped_alerts()}
    assert fors["AfirgenExporterDown"] == str(thresholds.EXPORTER_DOWN_FOR) == "5m"


def test_ratios_guard_their_denominators():
    """A division by a value that may be 0 must filter it first (`... > 0`)."""
    for group in load("afirgen.rules.yml")["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            if re.search(r"(^|\s)/\s", expr):
                denominator = re.split(r"(?:^|\s)/\s", expr, maxsplit=1)[1]
                assert "> 0" in denominator, rule["record"]


def test_example_prometheus_config_is_valid():
    promtool = require_binary("promtool")
    result = run(promtool, "check", "config", str(PROMETHEUS_EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout
    config = yaml.safe_load(PROMETHEUS_EXAMPLE.read_text())
    rule_files = {(PROMETHEUS_EXAMPLE.parent / f).resolve() for f in config["rule_files"]}
    assert rule_files == {ALERTS_DIR / "afirgen.rules.yml", ALERTS_DIR / "afirgen.alerts.yml"}


def test_example_prometheus_config_probes_through_sd():
    config = yaml.safe_load(PROMETHEUS_EXAMPLE.read_text())
    probe = next(job for job in config["scrape_configs"] if job.get("metrics_path") == "/probe")
    assert probe["http_sd_configs"][0]["url"].endswith("/sd")
    relabel = {r.get("target_label"): r for r in probe["relabel_configs"]}
    assert relabel["__param_target"]["source_labels"] == ["__address__"]
    assert relabel["instance"]["source_labels"] == ["__param_target"]


def test_example_alertmanager_config_is_valid():
    amtool = require_binary("amtool")
    result = run(amtool, "check-config", str(ALERTMANAGER_EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_checkers_reject_a_broken_config(tmp_path: Path):
    """The two checks above can fail: a typo in either file is caught."""
    promtool = require_binary("promtool")
    amtool = require_binary("amtool")
    good_prom = tmp_path / "prometheus.yml"
    good_prom.write_text(PROMETHEUS_EXAMPLE.read_text().replace("../../alerts/", f"{ALERTS_DIR}/"))
    assert run(promtool, "check", "config", str(good_prom)).returncode == 0
    bad_prom = tmp_path / "bad-prometheus.yml"
    bad_prom.write_text(good_prom.read_text().replace("action: keep", "action: kep"))
    bad_am = tmp_path / "alertmanager.yml"
    bad_am.write_text(
        ALERTMANAGER_EXAMPLE.read_text().replace("receiver: backend-pager", "receiver: nobody")
    )
    assert run(promtool, "check", "config", str(bad_prom)).returncode != 0
    assert run(amtool, "check-config", str(bad_am)).returncode != 0


def test_docs_list_every_alert_with_its_severity_and_for():
    docs = (ROOT / "docs" / "dashboards.md").read_text()
    for alert in shipped_alerts():
        name = alert["alert"]
        row = re.search(
            rf"^\| \[{name}\]\(\.\./alerts/runbook\.md#{name.lower()}\) \|(.+)$", docs, re.M
        )
        assert row, f"docs/dashboards.md has no row for {name}"
        cells = [c.strip() for c in row.group(1).split("|")]
        assert cells[:2] == [alert["labels"]["severity"], alert["for"]], name


def test_the_shared_generator_helper_writes_then_finds_nothing_stale(tmp_path: Path, capsys):
    from alerts.generated import write_or_check

    files = {tmp_path / "sub" / "a.yml": "a: 1\n", tmp_path / "b.json": "{}\n"}
    assert write_or_check(files, "gen", ["--check"]) == 1
    assert "stale, run gen: a.yml, b.json" in capsys.readouterr().err
    assert write_or_check(files, "gen", []) == 0
    assert write_or_check(files, "gen", ["--check"]) == 0
    (tmp_path / "b.json").write_text("{ }\n")
    assert write_or_check(files, "gen", ["--check"]) == 1
    assert "b.json" in capsys.readouterr().err
