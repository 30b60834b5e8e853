"""Encodes the boards with grafana-foundation-sdk into importable dashboard JSON.

The SDK models the dashboard itself. The import envelope (`__inputs` asking for a Prometheus
datasource, `__requires`) is not part of that model, so it is added around the SDK's output.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from grafana.panels import Board, Panel, Query

GRAFANA_VERSION = "11.6.0"
TAG = "afirgen"

#: Import asks for a Prometheus datasource and substitutes it for this placeholder.
DS_INPUT = "DS_PROMETHEUS"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

UPDOWN = [
    model.ValueMap(
        options={
            "0": model.ValueMappingResult(text="down", color="red", index=0),
            "1": model.ValueMappingResult(text="up", color="green", index=1),
        }
    )
]


def _query(query: Query, ref: str) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
    if query.legend:
        built = built.legend_format(query.legend)
    return built


def _panel(panel: Panel, panel_id: int) -> Any:
    builder: Any
    if panel.visualization == "stat":
        builder = stat.Panel()
    else:
        builder = timeseries.Panel().fill_opacity(10)
    builder = (
        builder.id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .unit(panel.unit)
        .datasource(DATASOURCE)
        .span(panel.width)
        .height(panel.height)
    )
    for index, query in enumerate(panel.queries):
        builder = builder.with_target(_query(query, chr(ord("A") + index)))
    if panel.updown:
        builder = builder.mappings(UPDOWN)
    if panel.min is not None:
        builder = builder.min(panel.min)
    if panel.max is not None:
        builder = builder.max(panel.max)
    if panel.steps:
        builder = builder.thresholds(
            dash.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=v, color=c) for v, c in panel.steps])
        )
    return builder


def _variables(board: Board) -> list[Any]:
    datasource = (
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(text="Prometheus", value="${" + DS_INPUT + "}"))
    )
    built: list[Any] = [datasource]
    for var in board.variables:
        built.append(
            dash.QueryVariable(var.name)
            .label(var.label)
            .datasource(DATASOURCE)
            .query(var.query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(model.VariableOption(text="All", value="$__all"))
        )
    return built


def build_dashboard(board: Board) -> dict[str, Any]:
    """The dashboard as the SDK encodes it (no import envelope)."""
    builder = (
        dash.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags([TAG, *board.tags])
        .editable()
        .timezone("browser")
        .refresh("30s")
        .time("now-3h", "now")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("afirgen dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for variable in _variables(board):
        builder = builder.with_variable(variable)
    panel_id = 1
    for row in board.rows:
        builder = builder.with_row(dash.Row(row.title).id(panel_id))
        panel_id += 1
        for panel in row.panels:
            builder = builder.with_panel(_panel(panel, panel_id))
            panel_id += 1
    encoded: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return encoded


def _requires(dashboard: dict[str, Any]) -> list[dict[str, str]]:
    kinds = sorted({p["type"] for p in dashboard["panels"] if p["type"] != "row"})
    names = {"stat": "Stat", "timeseries": "Time series"}
    requires = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ]
    requires += [{"type": "panel", "id": k, "name": names[k], "version": ""} for k in kinds]
    return requires


def importable(board: Board) -> dict[str, Any]:
    """The dashboard with the envelope Grafana's import reads."""
    dashboard = build_dashboard(board)
    envelope: dict[str, Any] = {
        "__inputs": [
            {
                "name": DS_INPUT,
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the afirgen exporter.",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": _requires(dashboard),
    }
    envelope.update(dashboard)
    return envelope
