"""What a dashboard is made of, and the factories the board modules build panels with.

A board is rows of panels; a panel says what it shows (description), in which unit, from which
queries. Colour steps take the alert thresholds (`alerts/thresholds.py`) where there is one,
so a stat turns red where its alert fires. Encoding with the SDK is `grafana/encode.py`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from alerts.thresholds import Level, Ratio

#: Selectors every query starts from, narrowed by the dashboard's variables.
JOB = 'job=~"$job"'
TARGET = f'{JOB}, instance=~"$instance"'
#: The range of every rate: Grafana picks it from the scrape interval and the zoom.
RATE = "$__rate_interval"

Visualization = Literal["timeseries", "stat"]
#: A colour step: from this value on (None: from the bottom), this colour.
Step = tuple[float | None, str]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: Sequence[Query]
    visualization: Visualization = "timeseries"
    width: int = 12
    height: int = 8
    #: For up/down gauges: 0 reads "down" in red, 1 "up" in green.
    updown: bool = False
    min: float | None = None
    max: float | None = None
    #: Colour steps, lowest first; the alert thresholds where there is one.
    steps: Sequence[Step] = ()


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    variables: Sequence[Variable]
    rows: Sequence[Row]
    tags: Sequence[str] = field(default_factory=tuple)

    @property
    def filename(self) -> str:
        return f"{self.uid}.json"


def query(expr: str, legend: str = "") -> Query:
    """A PromQL query of a panel, with its legend template."""
    return Query(expr, legend)


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    width: int = 12,
    height: int = 8,
    min: float | None = None,
    max: float | None = None,
) -> Panel:
    """A graph over time, half the row wide unless told otherwise."""
    return Panel(title, description, unit, queries, width=width, height=height, min=min, max=max)


def stat_panel(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    width: int = 6,
    height: int = 4,
    updown: bool = False,
    max: float | None = None,
    steps: Sequence[Step] = (),
) -> Panel:
    """A single number, a quarter of the row wide unless told otherwise."""
    return Panel(
        title,
        description,
        unit,
        queries,
        visualization="stat",
        width=width,
        height=height,
        updown=updown,
        max=max,
        steps=steps,
    )


def _number(limit: float | Ratio | Level) -> float:
    return limit.value if isinstance(limit, Ratio | Level) else limit


def red_above(limit: float | Ratio | Level) -> tuple[Step, ...]:
    """Green up to `limit`, red from it on: for things that are bad when high. An alert's
    threshold (alerts/thresholds.py) makes the stat turn red where the alert fires."""
    return ((None, "green"), (_number(limit), "red"))


def red_below(limit: float | Ratio | Level) -> tuple[Step, ...]:
    """Red below `limit`, green from it on: for things that are bad when low."""
    return ((None, "red"), (_number(limit), "green"))


def job_variable() -> Variable:
    return Variable("job", "Job", "label_values(afirgen_exporter_build_info, job)")


def instance_variable(
    metric: str = "afirgen_exporter_build_info", label: str = "Instance"
) -> Variable:
    return Variable("instance", label, f"label_values({metric}{{{JOB}}}, instance)")


def area_variable(name: str, label: str, metric: str) -> Variable:
    """The area's own label (database, server, queue, endpoint), narrowed by job and instance."""
    return Variable(name, label, f"label_values({metric}{{{TARGET}}}, {name})")
