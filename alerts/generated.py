"""Write generated files, or check that the committed ones are current.

Shared by every generator of the repository (`python -m alerts.build`,
`python -m grafana.build`): each renders {path: text} and hands it here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def stale_files(files: dict[Path, str]) -> list[Path]:
    """The files whose committed text differs from the generated one (or that are missing)."""
    return [path for path, text in files.items() if not path.exists() or path.read_text() != text]


def write_or_check(files: dict[Path, str], command: str, argv: list[str] | None) -> int:
    """Write the files, or with --check print the stale ones and return 1."""
    parser = argparse.ArgumentParser(description=f"Generate files ({command}).")
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)
    if not args.check:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return 0
    stale = stale_files(files)
    if stale:
        print(f"stale, run {command}: {', '.join(p.name for p in stale)}", file=sys.stderr)
        return 1
    return 0
