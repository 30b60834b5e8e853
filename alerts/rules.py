"""What a rule is, and what every expression starts from.

The recording and alerting rules of each area live in `alerts/areas/`, one module per area, as
`Record` and `Alert` values; `alerts/render.py` turns them into Prometheus rule files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from alerts.thresholds import Duration

#: Which scrape jobs the rules look at: the example config names them `afirgen` (the /metrics
#: scrape) and `afirgen-probe` (the /probe scrapes). Change it if your jobs are named otherwise.
SELECTOR = 'job=~"afirgen.*"'

#: Where `alerts/runbook.md` is published; each alert links to its own section.
RUNBOOK_URL = "https://github.com/afirgen/afirgen-exporter/blob/main/alerts/runbook.md"

Severity = Literal["critical", "warning", "info"]


def selector(extra: str = "") -> str:
    """The label selector of every raw series the rules read, with extra matchers."""
    return "{" + SELECTOR + (", " + extra if extra else "") + "}"


@dataclass(frozen=True)
class Record:
    record: str
    expr: str


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: Duration
    severity: Severity
    summary: str
    description: str

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_URL}#{self.name.lower()}"


@dataclass(frozen=True)
class Area:
    """One part of the backend: its recording rules (group `afirgen.NAME.rules`, left out when
    empty) and its alerts (group `afirgen.NAME.alerts`)."""

    name: str
    records: tuple[Record, ...] = field(default=())
    alerts: tuple[Alert, ...] = field(default=())
