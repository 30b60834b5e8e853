"""Writes the Prometheus recording and alerting rules.

Run `python -m alerts.build` after changing anything under `alerts/`; `tests/test_alerts.py`
fails while the committed YAML differs from what this generates. Every number an operator may
want to tune is in `alerts/thresholds.py`, with the reason it has the value it has; the label
selector every expression starts from is `SELECTOR` in `alerts/rules.py`; the rules of each
area are in `alerts/areas/`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alerts.generated import write_or_check
from alerts.render import alerting_rules, dump, recording_rules
from alerts.rules import RUNBOOK_URL, SELECTOR

__all__ = ["RUNBOOK_URL", "SELECTOR", "main", "render"]

HERE = Path(__file__).resolve().parent


def render() -> dict[Path, str]:
    """Every generated file and its content."""
    return {
        HERE / "afirgen.rules.yml": dump(recording_rules()),
        HERE / "afirgen.alerts.yml": dump(alerting_rules()),
    }


def main(argv: list[str] | None = None) -> int:
    return write_or_check(render(), "python -m alerts.build", argv)


if __name__ == "__main__":
    sys.exit(main())
