"""Puts the shipped dashboards and rules into the wheel as package data of `exporter`.

`grafana/` and `alerts/` stay the source folders (with their generators, which need the
Grafana SDK and are not installed); at build time their generated JSON and YAML are copied to
`exporter/data/dashboards/` and `exporter/data/rules/` inside the wheel, so site-packages gets
no package but `exporter` and `collectors`. `afirgen-exporter dashboards|rules --out DIR`
(exporter/shipped.py, which keeps the same table) writes them out.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: data directory under exporter/data/ -> (source folder, file pattern); as in exporter/shipped.py
SHIPPED = {"dashboards": ("grafana", "*.json"), "rules": ("alerts", "*.yml")}


class BuildWithShippedFiles(build_py):
    """build_py that also copies the generated dashboards and rules into the package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads grafana/ and alerts/ where they are
        for name, (folder, pattern) in SHIPPED.items():
            target = Path(self.build_lib) / "exporter" / "data" / name
            self.mkpath(str(target))
            for source in sorted((ROOT / folder).glob(pattern)):
                self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildWithShippedFiles})
