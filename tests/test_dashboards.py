"""The Grafana dashboards: generated from grafana/build.py, import-ready, and lossless through
the official SDK's model (a key the schema does not know would be dropped on the way back)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from grafana import build
from tests.support import ROOT, unavailable

FILES = sorted((ROOT / "grafana").glob("*.json"))
# The owner's schema in ../shared/ when the checkout sits beside it (it may be newer), else the
# copy kept with the tests.
SHARED_SCHEMA = ROOT.parent / "shared" / "grafana" / "dashboard.jsonschema.json"
SCHEMA = (
    SHARED_SCHEMA
    if SHARED_SCHEMA.exists()
    else ROOT / "tests" / "data" / "grafana-dashboard.jsonschema.json"
)
AREAS = {
    "afirgen-overview": None,
    "afirgen-exporter": None,
    "afirgen-database": "database",
    "afirgen-cache": "cache",
    "afirgen-model-servers": "server",
    "afirgen-task-queue": "queue",
    "afirgen-host": None,
    "afirgen-api": "endpoint",
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def body(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard without Grafana's import envelope (`__inputs`, `__requires`)."""
    return {k: v for k, v in dashboard.items() if not k.startswith("__")}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_one_dashboard_per_area_and_an_overview():
    assert {p.stem for p in FILES} == set(AREAS)


def test_committed_json_matches_the_generator():
    rendered = build.render()
    assert sorted(rendered) == FILES
    for path, text in rendered.items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m grafana.build"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_round_trips_through_the_sdk_without_dropped_keys(path: Path):
    original = body(load(path))
    again = json.loads(json.dumps(Dashboard.from_json(original), cls=JSONEncoder))
    assert again == original


def test_the_round_trip_catches_an_unknown_key():
    original = body(load(FILES[0]))
    original["panels"][1]["descripton"] = "typo"
    again = json.loads(json.dumps(Dashboard.from_json(original), cls=JSONEncoder))
    assert again != original


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_validates_against_the_dashboard_schema(path: Path):
    import jsonschema

    if not SCHEMA.exists():
        unavailable(f"the dashboard JSON schema is not at {SCHEMA}")
    schema = json.loads(SCHEMA.read_text())
    # The base step of a threshold is -Infinity, which Grafana writes as null: the schema says
    # so in the field's description ("Nulls currently appear here...") but types it a number.
    step = schema["definitions"]["Threshold"]["properties"]["value"]
    assert "Nulls" in step["description"]
    step["type"] = ["number", "null"]
    jsonschema.validate(body(load(path)), schema)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_import_envelope_asks_for_a_prometheus_datasource(path: Path):
    dashboard = load(path)
    (ds_input,) = dashboard["__inputs"]
    assert (ds_input["type"], ds_input["pluginId"]) == ("datasource", "prometheus")
    assert "${" + ds_input["name"] + "}" in json.dumps(body(dashboard))
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    used = {("panel", p["type"]) for p in panels(dashboard)}
    assert used | {("grafana", "grafana"), ("datasource", "prometheus")} == required
    assert dashboard["schemaVersion"] >= 41
    assert dashboard["uid"] == path.stem


def test_uids_and_titles_are_unique():
    dashboards = [load(p) for p in FILES]
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    assert len({d["title"] for d in dashboards}) == len(dashboards)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_variables_select_datasource_job_instance_and_the_area(path: Path):
    dashboard = load(path)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    expected = {"datasource", "job", "instance"} | ({AREAS[path.stem]} - {None})
    assert set(variables) == expected
    for name in expected - {"datasource"}:
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["query"].startswith("label_values(")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_panel_has_a_unit_a_description_and_the_datasource(path: Path):
    for panel in panels(load(path)):
        title = panel["title"]
        assert panel["description"].strip(), title
        assert panel["fieldConfig"]["defaults"]["unit"], title
        assert panel["datasource"]["uid"] == "${datasource}", title
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) == len(panel["targets"]) > 0, title
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), title


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_range_vectors_use_rate_interval_and_filter_by_job(path: Path):
    for panel in panels(load(path)):
        for target in panel["targets"]:
            expr = target["expr"]
            for window in re.findall(r"\[([^\]]+)\]", expr):
                assert window == "$__rate_interval", (panel["title"], expr)
            if "ALERTS" not in expr:
                assert 'job=~"$job"' in expr, (panel["title"], expr)


def test_panels_do_not_overlap():
    for path in FILES:
        taken: set[tuple[int, int]] = set()
        for panel in load(path)["panels"]:
            pos = panel["gridPos"]
            cells = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & taken, (path.stem, panel["title"])
            assert pos["x"] + pos["w"] <= 24, (path.stem, panel["title"])
            taken |= cells
