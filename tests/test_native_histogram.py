"""collectors/native_histogram.py: exponential bucket math, the bucket limit, the family it emits."""

from __future__ import annotations

import math
import threading

import pytest

from collectors.native_histogram import (
    Histograms,
    HistogramSeries,
    NativeSettings,
    bucket_bounds,
    bucket_index,
)


@pytest.mark.parametrize("schema", range(-4, 9))
def test_boundaries_belong_to_the_bucket_below(schema):
    # boundaries are base^i with base = 2^(2^-schema): the top of their bucket, not the next
    step = 1 << -schema if schema < 0 else 1
    for k in range(-64, 65, step):
        value = 2.0**k
        index = bucket_index(value, schema)
        lower, upper = bucket_bounds(index, schema)
        assert math.isclose(upper, value, rel_tol=1e-12), (schema, k)
        assert bucket_index(value * (1 + 1e-12), schema) == index + 1


@pytest.mark.parametrize("schema", [-2, 0, 1, 3, 5, 8])
def test_values_fall_inside_their_bucket(schema):
    for numerator in range(1, 4000, 7):
        value = numerator / 997
        lower, upper = bucket_bounds(bucket_index(value, schema), schema)
        assert lower < value * (1 + 1e-12) and value <= upper * (1 + 1e-12), (schema, value)


def test_bucket_limit_halves_the_resolution_and_keeps_every_count():
    series = HistogramSeries((), NativeSettings(schema=8, max_buckets=10))
    values = [1.0 + i / 100 for i in range(100)]  # spans many schema-8 buckets
    for value in values:
        series.observe(value)
    (native,) = [s.native_histogram for s in series.samples("x", {}) if s.native_histogram]
    total_buckets = sum(span.length for span in native.pos_spans)
    assert total_buckets <= 10 and native.schema < 8
    assert sum(_counts(native)) == len(values)
    # the buckets at the reduced schema still hold their values
    for value in values:
        lower, upper = bucket_bounds(bucket_index(value, native.schema), native.schema)
        assert lower < value <= upper


def _counts(native) -> list[int]:
    counts, running = [], 0
    for delta in native.pos_deltas:
        running += delta
        counts.append(running)
    return counts


def test_zero_bucket_threshold():
    series = HistogramSeries((1.0,), NativeSettings(zero_threshold=0.01))
    for value in (0.0, 0.005, -0.01, 0.02):
        series.observe(value)
    (native,) = [s.native_histogram for s in series.samples("x", {}) if s.native_histogram]
    assert native.zero_count == 3 and native.zero_threshold == 0.01
    assert sum(_counts(native)) == 1


def test_family_has_classic_and_native_samples():
    histograms = Histograms("d_seconds", "D.", ["op"], buckets=(0.1, 1.0))
    histograms.labels("a").observe(0.05)
    histograms.labels("a").observe(2.0)
    family = histograms.family()
    classic = {
        (s.name, s.labels.get("le")): s.value for s in family.samples if s.native_histogram is None
    }
    assert classic[("d_seconds_bucket", "0.1")] == 1
    assert classic[("d_seconds_bucket", "1.0")] == 1
    assert classic[("d_seconds_bucket", "+Inf")] == 2
    assert classic[("d_seconds_count", None)] == 2 and classic[("d_seconds_sum", None)] == 2.05
    (native,) = [s for s in family.samples if s.native_histogram is not None]
    assert native.labels == {"op": "a"} and native.native_histogram.count_value == 2


def test_without_native_settings_only_classic():
    histograms = Histograms("c_seconds", "C.", native=None)
    histograms.observe(1.0)
    assert all(s.native_histogram is None for s in histograms.family().samples)


def test_concurrent_observations_are_all_counted():
    series = Histograms("t_seconds", "T.").labels()
    threads = [
        threading.Thread(target=lambda: [series.observe(0.01 * (i % 50 + 1)) for i in range(2000)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples = {s.name: s for s in series.samples("t_seconds", {})}
    assert samples["t_seconds_count"].value == 8000
    assert sum(_counts(samples["t_seconds"].native_histogram)) == 8000


@pytest.mark.parametrize(
    "settings",
    [
        {"schema": 9},
        {"schema": -5},
        {"max_buckets": 0},
        {"zero_threshold": -1.0},
        {"zero_threshold": math.inf},
    ],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError, match="must be"):
        NativeSettings(**settings)


def test_bucket_bounds_are_powers_of_the_base():
    lower, upper = bucket_bounds(3, 1)
    assert math.isclose(upper, 2**1.5) and math.isclose(lower, 2.0)
    assert bucket_bounds(1, -2) == (1.0, 16.0)
