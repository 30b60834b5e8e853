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


def test_make_run_installs_no_test_tooling():
    """`make run` installs the exporter with its collectors' clients; the linters, the Grafana
    SDK, Celery and pytest come only with `make test`'s test extra."""
    import re
    import tomllib

    makefile = (README.parent / "Makefile").read_text()
    extras = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    run_extras = re.search(r"^RUN_EXTRAS := (\S+)$", makefile, re.M).group(1).split(",")
    assert re.search(r"^run: \$\(VENV\)/\.run-installed$", makefile, re.M)
    assert re.search(r"^test: \$\(VENV\)/\.test-installed", makefile, re.M)

    def requirements(extra: str) -> set[str]:
        found: set[str] = set()
        for requirement in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
            inner = re.match(r"afirgen-exporter\[(.+)\]", requirement)
            if inner:
                for sub in inner.group(1).split(","):
                    found |= requirements(sub)
            else:
                found.add(name)
        return found

    run_needs = set().union(*(requirements(e) for e in run_extras))
    assert {"sqlalchemy", "redis", "httpx", "kombu"} <= run_needs
    test_only = {"pytest", "ruff", "mypy", "grafana-foundation-sdk", "celery", "rq", "fastapi"}
    assert run_needs & test_only == set()
    assert test_only <= requirements("test")


def test_deployment_docs_link_every_shipped_deployment_file_and_no_missing_one():
    import re

    root = README.parent
    deployment = root / "docs" / "deployment.md"
    for doc in (README, deployment):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links a missing {target}"
    text = deployment.read_text()
    for folder in sorted(p for p in (root / "deploy").iterdir() if p.is_dir()):
        assert f"(../deploy/{folder.name}/" in text, f"docs/deployment.md does not link {folder}"
    assert "(../mixin.libsonnet)" in text
    assert "(docs/deployment.md)" in README.read_text()
