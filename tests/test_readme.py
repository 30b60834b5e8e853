"""The README's collector table and quick start stay true to the code."""

from __future__ import annotations

from pathlib import Path

from collectors.catalog import CATALOG
from exporter.readme_tables import BEGIN, END, render

README = Path(__file__).resolve().parent.parent / "README.md"


def test_collector_table_is_generated_from_the_catalog():
    text = README.read_text()
    assert BEGIN in text and END in text
    assert render(text) == text, "run: python -m exporter.readme_tables"
    for spec in CATALOG:
        assert f"| `{spec.name}` |" in text


def test_quick_start_commands_exist_in_the_makefile():
    makefile = (README.parent / "Makefile").read_text()
    text = README.read_text()
    for target in ("run", "test"):
        assert f"make {target}" in text
        assert f"\n{target}:" in makefile
