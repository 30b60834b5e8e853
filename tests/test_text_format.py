"""exporter/text_format.py must write exactly what prometheus_client's generate_latest writes."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    Summary,
    exposition,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter import text_format
from exporter.text_format import generate_text


class Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def library(families) -> bytes:
    return exposition.generate_latest(Families(families))


VALUES = [
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    1e-9,
    123456.0,
    999999.0,
    1e6,
    1234567.0,
    1.5e300,
    -2e7,
    math.inf,
    -math.inf,
    math.nan,
    42,
    7e15,
    1e16,
    2**53,
]
TRICKY = ["plain", 'with "quotes"', "back\\slash", "new\nline", "ünïcödé", "", "a,b=c}"]


def varied_families(seed: int) -> list[Metric]:
    rng = random.Random(seed)
    counter = CounterMetricFamily(
        "ops", "Ops with a \\ and a\nnewline.", labels=["b", "a"], created=1.7e9
    )
    for i in range(50):
        counter.add_metric(
            [rng.choice(TRICKY), f"v{i}"],
            rng.choice(VALUES),
            created=1.7e9 + i,
            timestamp=rng.choice([None, 1.7e9 + i / 7]),
        )
    gauge = GaugeMetricFamily("level", "Levels.", labels=["x"])
    for value in VALUES:
        gauge.add_metric([str(value)], value)
    histogram = HistogramMetricFamily("lat_seconds", "Latency.", labels=["op"])
    histogram.add_metric(["get"], [("0.005", 1), ("0.1", 3), ("+Inf", 4)], sum_value=0.2)
    gauge_histogram = GaugeHistogramMetricFamily(
        "gh", "GH.", buckets=[("1", 2), ("+Inf", 3)], gsum_value=4
    )
    summary = SummaryMetricFamily("req", "Req.", count_value=3, sum_value=1.5)
    info = InfoMetricFamily("build", "Build.", value={"version": "1.0", "commit": 'a"b'})
    stateset = StateSetMetricFamily("state", "State.", value={"on": True, "off": False})
    unknown = UnknownMetricFamily("mystery", "Unknown.", value=3)
    plain = Metric("weird:name", "Colons are legal.", "gauge")
    plain.add_sample("weird:name", {"le": "1", "label_with_underscore": "x"}, 1.0)
    scalar = GaugeMetricFamily("scalar", "No labels.", value=12.0)
    families = [
        counter,
        gauge,
        histogram,
        gauge_histogram,
        summary,
        info,
        stateset,
        unknown,
        plain,
        scalar,
    ]
    rng.shuffle(families)
    return families


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_library_byte_for_byte_on_varied_families(seed):
    families = varied_families(seed)
    assert generate_text(families) == library(families)


def test_matches_the_library_on_live_metric_objects():
    registry = CollectorRegistry()
    Counter("hits", "Hits.", ["route"], registry=registry).labels("/x").inc(3)
    Gauge("temp", "Temp.", registry=registry).set(-3.25)
    Histogram("h_seconds", "H.", registry=registry).observe(0.3)
    Summary("s_seconds", "S.", registry=registry).observe(1.0)
    Info("app", "App.", registry=registry).info({"version": "2"})
    families = list(registry.collect())
    assert generate_text(families) == library(families)


def test_output_parses_back_to_the_same_samples():
    families = varied_families(11)
    parsed = list(text_string_to_metric_families(generate_text(families).decode()))
    expected = list(text_string_to_metric_families(library(families).decode()))
    assert [(f.name, f.type, len(f.samples)) for f in parsed] == [
        (f.name, f.type, len(f.samples)) for f in expected
    ]


def test_empty_input():
    assert generate_text([]) == b""


def utf8_families(order: int) -> list[Metric]:
    """Names outside the legacy set (dots, a percent sign), label dicts in either order."""
    dotted = Metric("my.metric", "Dotted: 100% legal in UTF-8.", "gauge")
    pairs = [("b.label", "x%sy"), ("a", 'q"uote')]
    for i in range(3):
        labels = dict(pairs if (i + order) % 2 else pairs[::-1])
        dotted.add_sample("my.metric", labels, float(i))
    percent = Metric("odd%name", "Percent.", "counter")
    percent.add_sample("odd%name_total", {"l%1": "%d"}, 2.0)
    percent.add_sample("odd%name_created", {"l%1": "%d"}, 1.7e9)
    return [dotted, percent, *varied_families(order)]


@pytest.mark.parametrize("escaping", ["underscores", "allow-utf-8"])
def test_matches_the_library_with_either_name_escaping_scrape_after_scrape(escaping):
    # line templates are kept across calls: later calls with other label orders must agree
    for order in range(3):
        families = utf8_families(order)
        assert generate_text(families, escaping) == exposition.generate_latest(
            Families(families), escaping=escaping
        )


def test_series_lines_kept_across_scrapes_follow_changed_values_and_label_orders():
    # a series' line up to its value is kept: new values, label values that need escaping and
    # other label orders of the same names must still write what the library writes
    for round_ in range(4):
        gauge = GaugeMetricFamily("kept", "Kept.", labels=["b", "a"])
        for i, tricky in enumerate(TRICKY):
            gauge.add_metric([tricky, f"v{(i + round_) % 3}"], float(i * round_))
        swapped = Metric("kept_swapped", "Swapped.", "gauge")
        for i in range(3):
            order = [("a", f"x{i}"), ("b", TRICKY[(i + round_) % len(TRICKY)])]
            swapped.add_sample("kept_swapped", dict(order[:: 1 if (i + round_) % 2 else -1]), 1.0)
        families = [gauge, swapped, *varied_families(round_)]
        assert generate_text(families) == library(families)


def test_caches_are_bounded_and_follow_new_series(monkeypatch):
    monkeypatch.setattr(text_format, "CACHE_LIMIT", 40)
    monkeypatch.setattr(text_format, "CACHE", text_format.SeriesCache())
    for seed in range(4):  # more series than the caches keep, and other ones each time
        families = varied_families(seed)
        assert generate_text(families) == library(families)
        assert len(text_format.CACHE.lines["underscores"]) <= 40
        assert len(text_format.CACHE.templates["underscores"]) <= 40
        assert len(text_format.CACHE.heads["underscores"]) <= 40 + len(families)
    # full of series that no longer come, the line cache is emptied for the next scrape's
    gauge = GaugeMetricFamily("fresh", "Fresh.", labels=["n"])
    for i in range(100):
        gauge.add_metric([f"n{i}"], 1.0)
    assert generate_text([gauge]) == library([gauge])
    assert text_format.CACHE.lines["underscores"] == {}
    # a scrape larger than the cache is written from templates alone, as before
    assert generate_text([gauge]) == library([gauge])
    assert text_format.CACHE.lines["underscores"] == {}
    small = varied_families(0)[:3]
    assert generate_text(small) == library(small)
    assert generate_text(small) == library(small)
    assert 0 < len(text_format.CACHE.lines["underscores"]) <= 40
