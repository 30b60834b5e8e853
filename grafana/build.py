"""Writes the Grafana dashboards as importable JSON.

Run `python -m grafana.build` after changing anything under `grafana/`; `tests/test_dashboards.py`
fails while the committed JSON differs from what this generates. Each board is a module of
`grafana/boards/` (rows of panels built with the factories of `grafana/panels.py`);
`grafana/encode.py` turns it into JSON with grafana-foundation-sdk.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from alerts.generated import write_or_check
from grafana.boards import BOARDS
from grafana.encode import importable

HERE = Path(__file__).resolve().parent


def render() -> dict[Path, str]:
    """Every generated file and its content."""
    return {
        HERE / board.filename: json.dumps(importable(board), indent=2, sort_keys=False) + "\n"
        for board in BOARDS
    }


def main(argv: list[str] | None = None) -> int:
    return write_or_check(render(), "python -m grafana.build", argv)


if __name__ == "__main__":
    sys.exit(main())
