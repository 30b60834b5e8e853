"""The exporter's own families: what each scrape says about every collector it ran.

The specs are the README's generated table (`python -m exporter.docs_tables`); the scrape
engine (exporter.scrape) fills them from its results, the config state (exporter.state)
serves the reload pair.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collectors.base import CollectionResult
from collectors.specs import MetricSpec, add, counter, gauge
from exporter.runs import MAX_ABANDONED

#: One scrape's row for a unit: its (collector, target) key, its result, its abandoned runs
#: since start and those still running.
UnitRow = tuple[tuple[str, str], CollectionResult, int, int]

_UNIT_LABELS = ("collector", "target")

# fmt: off
BUILD_INFO = gauge("afirgen_exporter_build_info", "Version of the exporter and of the Python running it; always 1.", ["version", "python_version"])  # noqa: E501
COLLECTOR_SUCCESS = gauge("afirgen_exporter_collector_success", "1 if the collector read its source in this scrape, 0 if it failed or timed out.", _UNIT_LABELS)  # noqa: E501
COLLECTOR_DURATION = gauge("afirgen_exporter_collector_duration_seconds", "Time the collector took in this scrape (up to the deadline).", _UNIT_LABELS, unit="seconds")  # noqa: E501
SERIES_DROPPED = gauge("afirgen_exporter_series_dropped", "Series folded into 'other' by a cardinality budget in this scrape.", _UNIT_LABELS)  # noqa: E501
ABANDONED = counter("afirgen_exporter_collections_abandoned_total", "Collections that overran their deadline and were abandoned (the next scrape started afresh): a wedged source.", _UNIT_LABELS)  # noqa: E501
STUCK = gauge("afirgen_exporter_collections_stuck", f"Abandoned collections still running; at {MAX_ABANDONED} no other starts until one ends (the target is down meanwhile).", _UNIT_LABELS)  # noqa: E501
CACHED_AGE = gauge("afirgen_exporter_cached_age_seconds", "Age of values a collector reads on an interval of its own rather than every scrape (sizes, settings, versions), by part; absent while its source is down.", (*_UNIT_LABELS, "part"), unit="seconds")  # noqa: E501
PROBE_SUCCESS = gauge("probe_success", "1 if every collector of the probed target succeeded (/probe only).")  # noqa: E501
PROBE_DURATION = gauge("probe_duration_seconds", "How long the probe took (/probe only).", unit="seconds")  # noqa: E501
# served by exporter.state.Exporter through `extra_families`
RELOAD_OK = gauge("afirgen_exporter_config_last_reload_successful", "1 if the last config reload succeeded (or none was tried), 0 after a refused one.")  # noqa: E501
RELOAD_TIME = gauge("afirgen_exporter_config_last_reload_success_timestamp_seconds", "When the config was last loaded successfully (Unix time).", unit="seconds")  # noqa: E501
# fmt: on

#: The exporter's own families (README's generated table).
SPECS: tuple[MetricSpec, ...] = (
    BUILD_INFO,
    COLLECTOR_SUCCESS,
    COLLECTOR_DURATION,
    SERIES_DROPPED,
    ABANDONED,
    STUCK,
    CACHED_AGE,
    PROBE_SUCCESS,
    PROBE_DURATION,
    RELOAD_OK,
    RELOAD_TIME,
)


def unit_families(rows: Iterable[UnitRow]) -> list[Metric]:
    """Success, duration, dropped series, abandoned and stuck runs, cached ages per unit."""
    success = COLLECTOR_SUCCESS.family()
    duration = COLLECTOR_DURATION.family()
    dropped = SERIES_DROPPED.family()
    abandoned = ABANDONED.family()
    stuck = STUCK.family()
    ages = CACHED_AGE.family()
    # samples made directly: what add() makes, without its checks and zips (five a unit)
    make = tuple.__new__
    columns = (
        (success.samples, success.name),
        (duration.samples, duration.name),
        (dropped.samples, dropped.name),
        (abandoned.samples, abandoned.name + "_total"),
        (stuck.samples, stuck.name),
    )
    for key, result, abandoned_total, stuck_now in rows:
        row = (
            float(result.success),
            float(result.duration_seconds),
            float(result.series_dropped),
            float(abandoned_total),
            float(stuck_now),
        )
        for (samples, name), value in zip(columns, row, strict=True):
            labels = {"collector": key[0], "target": key[1]}
            samples.append(make(Sample, (name, labels, value, None, None, None)))
        for part, age in result.ages:
            add(ages, (*key, part), age)
    return [success, duration, dropped, abandoned, stuck, ages]
