"""collectors/specs.py: families made from specs are the ones prometheus_client would make."""

from __future__ import annotations

import pytest
from prometheus_client import exposition
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.samples import Sample

from collectors.specs import FamilySet, add, counter, gauge, histogram

READS = counter("t_reads_total", "Reads.", ["db", "table"])
SIZE = gauge("t_size_bytes", "Size.", ["db"], unit="bytes")
UP = gauge("t_up", "Up.")
VALUES = [0, 1, -2.5, 1e300, float("inf"), True, 7]


class Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self):
        return iter(self.families)


def by_library() -> list[Metric]:
    reads = CounterMetricFamily("t_reads", "Reads.", labels=["db", "table"])
    size = GaugeMetricFamily("t_size_bytes", "Size.", labels=["db"], unit="bytes")
    up = GaugeMetricFamily("t_up", "Up.", labels=[])
    for i, value in enumerate(VALUES):
        reads.add_metric(["main", f"t{i}"], float(value))
        size.add_metric([f"d{i}"], float(value))
    up.add_metric([], 1.0)
    return [reads, size, up]


def by_specs() -> list[Metric]:
    families = FamilySet("main")
    size = SIZE.family()
    for i, value in enumerate(VALUES):
        families.add(READS, value, f"t{i}")
        add(size, [f"d{i}"], value)
    return [*families.families(), size, UP.single(1)]


def test_samples_are_the_ones_add_metric_makes():
    for ours, theirs in zip(by_specs(), by_library(), strict=True):
        assert type(ours) is type(theirs)
        assert (ours.name, ours.type, ours.unit, ours.documentation) == (
            theirs.name,
            theirs.type,
            theirs.unit,
            theirs.documentation,
        )
        assert ours.samples == theirs.samples
        assert all(type(s) is Sample and type(s.value) is float for s in ours.samples)


@pytest.mark.parametrize("escaping", ["underscores", "allow-utf-8"])
def test_both_encoders_write_the_same_bytes(escaping):
    ours, theirs = Families(by_specs()), Families(by_library())
    assert exposition.generate_latest(ours, escaping=escaping) == exposition.generate_latest(
        theirs, escaping=escaping
    )
    assert om_exposition.generate_latest(ours, escaping=escaping) == (
        om_exposition.generate_latest(theirs, escaping=escaping)
    )


def test_families_are_independent_copies():
    first, second = SIZE.family(), SIZE.family()
    add(first, ["a"], 1.0)
    assert second.samples == [] and SIZE.family().samples == []
    other = SIZE.family(["db", "extra"])
    add(other, ["a", "b"], 2.0)
    assert other.samples == [Sample("t_size_bytes", {"db": "a", "extra": "b"}, 2.0)]
    assert SIZE.family().samples == []


def test_add_takes_gauges_and_counters_and_their_subclasses_only():
    class MyGauge(GaugeMetricFamily):
        pass

    mine = MyGauge("t_mine", "Mine.", labels=["x"])
    add(mine, ["1"], 3)
    assert mine.samples == [Sample("t_mine", {"x": "1"}, 3.0)]
    with pytest.raises(TypeError, match="takes gauges and counters"):
        add(histogram("t_h_seconds", "H.").family(), [], 1.0)
    with pytest.raises(TypeError, match="takes gauges and counters"):
        add(HistogramMetricFamily("t_h2", "H."), [], 1.0)
