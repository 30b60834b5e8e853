"""`mixin.libsonnet`, evaluated by the real `jsonnet` tool: with its default `_config` it is
exactly the shipped rules and dashboards; a `_config` override reaches every expression and
every runbook link; it is what the generator writes."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import yaml

from alerts import build, mixin
from alerts.rules import RUNBOOK_URL, SELECTOR
from tests.support import ROOT, require_binary

MIXIN = ROOT / "mixin.libsonnet"


def evaluate(code: str) -> Any:
    jsonnet = require_binary("jsonnet")
    result = subprocess.run(
        [jsonnet, "-e", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def shipped(name: str) -> Any:
    return yaml.safe_load((ROOT / "alerts" / name).read_text())


def test_committed_mixin_is_what_the_generator_writes():
    assert MIXIN.read_text() == build.render()[MIXIN]


def test_default_config_evaluates_to_the_shipped_rules():
    assert evaluate("(import 'mixin.libsonnet').prometheusRules") == shipped("afirgen.rules.yml")
    assert evaluate("(import 'mixin.libsonnet').prometheusAlerts") == shipped("afirgen.alerts.yml")


def test_default_config_evaluates_to_the_shipped_dashboards():
    dashboards = evaluate("(import 'mixin.libsonnet').grafanaDashboards")
    files = sorted((ROOT / "grafana").glob("*.json"))
    assert sorted(dashboards) == [f.name for f in files]
    for path in files:
        assert dashboards[path.name] == json.loads(path.read_text()), path.name


def test_config_overrides_reach_every_expression_and_runbook_link():
    code = """
    local mixin = (import 'mixin.libsonnet') + {
      _config+:: { selector: 'job="backend"', runbookURL: 'https://wiki.example/runbook' },
    };
    { rules: mixin.prometheusRules, alerts: mixin.prometheusAlerts }
    """
    overridden = evaluate(code)
    rules = [
        r for part in ("rules", "alerts") for g in overridden[part]["groups"] for r in g["rules"]
    ]
    text = json.dumps(overridden)
    assert SELECTOR.replace('"', '\\"') not in text and RUNBOOK_URL not in text
    raw = [r for r in rules if "{" in r["expr"]]  # the ones reading series, not only records
    assert raw and all('job="backend"' in r["expr"] for r in raw)
    for alert in (r for r in rules if "alert" in r):
        assert alert["annotations"]["runbook_url"] == (
            f"https://wiki.example/runbook#{alert['alert'].lower()}"
        )
    # the same rules otherwise: only the selector changed
    assert replace_strings(overridden["rules"], 'job="backend"', SELECTOR) == shipped(
        "afirgen.rules.yml"
    )


def replace_strings(data: Any, old: str, new: str) -> Any:
    if isinstance(data, str):
        return data.replace(old, new)
    if isinstance(data, dict):
        return {k: replace_strings(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [replace_strings(v, old, new) for v in data]
    return data


def test_strings_become_config_references_only_where_the_literal_is():
    assert mixin.string("up") == '"up"'
    assert mixin.string(f"up{{{SELECTOR}}}") == '"up{" + $._config.selector + "}"'
    assert mixin.string(f"{RUNBOOK_URL}#x") == '$._config.runbookURL + "#x"'
    assert mixin.string("") == '""'
    assert (
        evaluate(
            "local c = {selector: 's', runbookURL: 'r'}; "
            + mixin.string(f"a{SELECTOR}b{RUNBOOK_URL}c").replace("$._config", "c")
        )
        == "asbrc"
    )
