"""exporter/openmetrics_format.py must write exactly what prometheus_client's OpenMetrics
encoder writes, scrape after scrape, with either name escaping."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, Summary
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as om
from prometheus_client.samples import Exemplar, Sample, Timestamp

from collectors.native_histogram import Histograms, NativeSettings
from exporter import openmetrics_format, text_format
from exporter.openmetrics_format import generate_openmetrics
from tests.test_text_format import TRICKY, Families, utf8_families, varied_families

ESCAPINGS = ["underscores", "allow-utf-8"]


def library(families: list[Metric], escaping: str = "underscores") -> bytes:
    return om.generate_latest(Families(families), escaping=escaping)


def unusual_families() -> list[Metric]:
    """Exemplars, native buckets, OpenMetrics timestamps, units, a colon in a name."""
    histograms = Histograms("req_seconds", "Requests.", ["route"], native=NativeSettings())
    for i in range(20):
        histograms.labels("/a").observe(i / 10, {"trace_id": f"t{i}"} if i % 7 == 0 else None)
    histograms.labels("/b").observe(0.2)
    hits = CounterMetricFamily("hits", "Hits.", labels=["route"], unit="")
    hits.add_metric(["/x"], 3.0, created=1.7e9, timestamp=Timestamp(1_700_000_000, 5))
    traced = CounterMetricFamily("traced", "Traced.", labels=["route"])
    traced.samples.append(
        Sample("traced_total", {"route": "/y"}, 1.0, None, Exemplar({"a": "b"}, 1.0))
    )
    sized = GaugeMetricFamily("size_bytes", 'Size with a "quote".', labels=["k"], unit="bytes")
    sized.add_metric(['a"b'], 1e21, timestamp=1.7e9 + 0.25)
    colon = Metric("with:colon", "Colon.", "gauge")
    colon.add_sample("with:colon", {}, 2.0)
    percent = Metric("pct.%d", "Percent, no labels.", "gauge")
    percent.add_sample("pct.%d", {}, 3.0)
    return [histograms.family(), hits, traced, sized, colon, percent]


@pytest.mark.parametrize("escaping", ESCAPINGS)
@pytest.mark.parametrize("seed", range(4))
def test_matches_the_library_byte_for_byte(seed, escaping):
    families = [*utf8_families(seed), *unusual_families()]
    assert generate_openmetrics(families, escaping) == library(families, escaping)


@pytest.mark.parametrize("escaping", ESCAPINGS)
def test_kept_lines_follow_changed_values_and_label_orders(escaping):
    for round_ in range(4):
        gauge = GaugeMetricFamily("kept", "Kept.", labels=["b", "a"])
        for i, tricky in enumerate(TRICKY):
            gauge.add_metric([tricky, f"v{(i + round_) % 3}"], float(i * round_))
        swapped = Metric("kept.swapped", "Swapped.", "gauge")
        for i in range(3):
            order = [("a", f"x{i}"), ("b.c", TRICKY[(i + round_) % len(TRICKY)])]
            labels = dict(order[:: 1 if (i + round_) % 2 else -1])
            swapped.add_sample("kept.swapped", labels, 1.0)
        families = [gauge, swapped, *varied_families(round_)]
        assert generate_openmetrics(families, escaping) == library(families, escaping)


def test_matches_the_library_on_live_metric_objects():
    registry = CollectorRegistry()
    Counter("hits", "Hits.", ["route"], registry=registry).labels("/x").inc(3)
    Gauge("temp_celsius", "Temp.", unit="celsius", registry=registry).set(-3.25)
    Histogram("h_seconds", "H.", registry=registry).observe(0.3)
    Summary("s_seconds", "S.", registry=registry).observe(1.0)
    Info("app", "App.", registry=registry).info({"version": "2"})
    families = list(registry.collect())
    assert generate_openmetrics(families) == library(families)


def test_empty_input_is_just_the_end_marker():
    assert generate_openmetrics([]) == library([]) == b"# EOF\n"


def test_a_family_the_library_refuses_is_refused_the_same_way():
    bad = GaugeMetricFamily("bad", "Bad.", labels=["a"])
    bad.samples.append(Sample("bad", {"a": 1}, 1.0))  # a label value that is not a string
    with pytest.raises(Exception) as ours:
        generate_openmetrics([bad])
    with pytest.raises(Exception) as theirs:
        library([bad])
    assert type(ours.value) is type(theirs.value)
    assert ours.value.args == theirs.value.args


def test_caches_are_bounded_and_follow_new_series(monkeypatch):
    monkeypatch.setattr(openmetrics_format, "CACHE", text_format.SeriesCache())
    monkeypatch.setattr(openmetrics_format, "CACHE_LIMIT", 40)
    monkeypatch.setattr(text_format, "CACHE_LIMIT", 40)  # SeriesCache's
    for seed in range(4):  # more series than the caches keep, and other ones each time
        families = [*utf8_families(seed), *unusual_families()]
        for escaping in ESCAPINGS:
            assert generate_openmetrics(families, escaping) == library(families, escaping)
            assert len(openmetrics_format.CACHE.lines[escaping]) <= 40
            assert len(openmetrics_format.CACHE.templates[escaping]) <= 40
    small = varied_families(0)[:3]
    assert generate_openmetrics(small) == library(small)
    assert generate_openmetrics(small) == library(small)
    assert 0 < len(openmetrics_format.CACHE.lines["underscores"]) <= 40


def test_exemplars_and_native_buckets_are_written_here_too(monkeypatch):
    handed: list[str] = []
    whole = openmetrics_format._library

    def library_for(metric: Metric, escaping: str) -> str:
        handed.append(metric.name)
        return whole(metric, escaping)

    monkeypatch.setattr(openmetrics_format, "_library", library_for)
    families = [*utf8_families(0), *unusual_families()]
    assert generate_openmetrics(families) == library(families)
    assert handed == []


def test_an_exemplar_the_library_refuses_is_refused_the_same_way():
    gauge = GaugeMetricFamily("ex", "Exemplar on a gauge.", labels=[])
    gauge.samples.append(Sample("ex", {}, 1.0, None, Exemplar({"a": "b"}, 1.0)))
    with pytest.raises(ValueError) as ours:
        generate_openmetrics([gauge])
    with pytest.raises(ValueError) as theirs:
        library([gauge])
    assert ours.value.args == theirs.value.args
