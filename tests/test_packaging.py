"""The wheel: only `exporter` and `collectors` in site-packages, the dashboards and rules as
package data, and `afirgen-exporter dashboards|rules --out DIR` writing them from an installed
wheel (a throwaway venv, run outside the checkout) and from the source checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from exporter import cli, shipped
from tests.support import ROOT

#: What the build needs from the checkout (a copy, so the build leaves no build/ in the tree).
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
PACKAGES = ("exporter", "collectors", "grafana", "alerts")
SHIPPED = {
    "dashboards": sorted((ROOT / "grafana").glob("*.json")),
    "rules": sorted((ROOT / "alerts").glob("*.yml")),
}


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        shutil.copy(ROOT / name, source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source, cwd=source)
    (built,) = dist.glob("afirgen_exporter-*.whl")
    return built


def top_level(names: list[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in names}


@pytest.mark.slow
def test_wheel_holds_only_the_two_packages_and_the_shipped_files(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    assert len(dist_info) == 1
    assert top_level(names) == {"exporter", "collectors"} | dist_info
    for command, files in SHIPPED.items():
        packaged = sorted(n for n in names if n.startswith(f"exporter/data/{command}/"))
        assert packaged == [f"exporter/data/{command}/{f.name}" for f in files]
    # the generators and their SDK stay out of the wheel
    assert not [n for n in names if "build.py" in n or n.startswith(("grafana/", "alerts/"))]


@pytest.mark.slow
def test_installed_wheel_writes_the_dashboards_and_rules(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    # no pip of its own (ensurepip takes most of the test's time): this pip installs into it
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    pip = (sys.executable, "-m", "pip", "--python", venv / "bin" / "python")
    run(*pip, "install", "-q", "--no-compile", "--disable-pip-version-check", wheel, cwd=tmp_path)
    # nothing but the two packages (and the dist-info) lands in site-packages
    (record,) = venv.glob("lib/python*/site-packages/afirgen_exporter-*.dist-info/RECORD")
    paths = [line.split(",", 1)[0] for line in record.read_text().splitlines()]
    in_site_packages = [p for p in paths if not p.startswith("../")]
    assert top_level(in_site_packages) == {"exporter", "collectors", record.parent.name}
    elsewhere = [p for p in paths if p.startswith("../")]
    assert [Path(p).name for p in elsewhere] == ["afirgen-exporter"]
    for command, files in SHIPPED.items():
        out = tmp_path / command
        # run outside the checkout, so only the installed package can answer
        result = run(venv / "bin" / "afirgen-exporter", command, "--out", out, cwd=tmp_path)
        assert result.stdout.split() == [str(out / f.name) for f in files]
        for original in files:
            assert (out / original.name).read_bytes() == original.read_bytes(), original.name


def test_source_checkout_writes_the_dashboards_and_rules(tmp_path: Path, capsys):
    for command, files in SHIPPED.items():
        out = tmp_path / "new" / command
        assert cli.main([command, "--out", str(out)]) == 0
        assert capsys.readouterr().out.split() == [str(out / f.name) for f in files]
        assert sorted(p.name for p in out.iterdir()) == [f.name for f in files]
        for original in files:
            assert (out / original.name).read_bytes() == original.read_bytes()


def test_out_is_required_and_an_unwritable_target_is_an_error(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["rules"])
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["dashboards", "--out", str(blocker)]) == 1
    assert "afirgen-exporter dashboards:" in capsys.readouterr().err


def test_setup_py_copies_what_the_cli_reads():
    """setup.py and exporter/shipped.py keep the same table (setup.py cannot import exporter
    in the isolated build environment)."""
    text = (ROOT / "setup.py").read_text()
    assert f"SHIPPED = {shipped.SHIPPED!r}".replace("'", '"') in text
