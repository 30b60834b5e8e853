"""The dashboards and rules that ship with the exporter, and the commands that write them out.

`afirgen-exporter dashboards --out DIR` writes the Grafana dashboards (JSON), `afirgen-exporter
rules --out DIR` the Prometheus recording and alerting rules (YAML). In an installed wheel they
are package data under `exporter/data/` (copied from `grafana/` and `alerts/` at build time by
setup.py, which keeps the same table); in a source checkout they are read from those folders.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

#: command -> (source folder in a checkout, file pattern); the wheel has exporter/data/COMMAND/
SHIPPED = {"dashboards": ("grafana", "*.json"), "rules": ("alerts", "*.yml")}
COMMANDS = tuple(SHIPPED)
DESCRIPTIONS = {
    "dashboards": "Write the Grafana dashboards (importable JSON) into DIR.",
    "rules": "Write the Prometheus recording and alerting rules (YAML) into DIR.",
}


def shipped_files(command: str) -> list[Traversable]:
    """The shipped files of one kind, sorted by name."""
    folder, pattern = SHIPPED[command]
    packaged = files("exporter") / "data" / command
    if packaged.is_dir():
        found = [f for f in packaged.iterdir() if f.is_file() and Path(f.name).match(pattern)]
    else:  # a source checkout: the folders beside the package
        found = list((Path(__file__).resolve().parent.parent / folder).glob(pattern))
    return sorted(found, key=lambda f: f.name)


def write(command: str, out: Path) -> list[Path]:
    """Copy the shipped files of `command` into `out` (created if missing); the paths written."""
    sources = shipped_files(command)
    if not sources:
        raise FileNotFoundError(f"no {command} found in this installation")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        target = out / source.name
        target.write_bytes(source.read_bytes())
        written.append(target)
    return written


def main(argv: Sequence[str]) -> int:
    """`afirgen-exporter dashboards|rules --out DIR`: argv starts with the command."""
    command, *rest = argv
    parser = argparse.ArgumentParser(
        prog=f"afirgen-exporter {command}", description=DESCRIPTIONS[command]
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    args = parser.parse_args(rest)
    try:
        written = write(command, args.out)
    except OSError as exc:
        print(f"afirgen-exporter {command}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
