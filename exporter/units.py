"""From a Config to the units the scrape engine runs: the catalog's `build` for each target."""

from __future__ import annotations

from collections.abc import Sequence

from collectors.base import SourceCollector
from collectors.catalog import CATALOG
from exporter.config import Config
from exporter.scrape import Unit


def build_units(config: Config, extra: Sequence[SourceCollector] = ()) -> list[Unit]:
    """Every configured target as a Unit. Builds clients but dials nothing.

    `extra` are collectors handed in by an application (embedded mode): always served.
    """
    units: list[Unit] = []
    for spec in CATALOG:
        enabled = config.enabled(spec.name)
        options = config.options(spec.name)
        if spec.section is None:
            if enabled:
                collector = spec.load().build(options, None)
                units.append(
                    Unit(spec.name, collector.name, collector, in_metrics=True, settings=(options,))
                )
            continue
        for target in config.targets.get(spec.section, ()):
            collector = spec.load().build(options, target)
            units.append(
                Unit(
                    spec.name,
                    target.name,
                    collector,
                    in_metrics=enabled,
                    timeout_seconds=getattr(target, "timeout_seconds", None),
                    settings=(options, target),
                )
            )
    for collector in extra:
        units.append(Unit(collector.collector, collector.name, collector, in_metrics=True))
    for collector_unit in units:
        collector_unit.collector.default_timeout = config.scrape.default_timeout_seconds
    return units
