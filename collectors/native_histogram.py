"""Histograms the exporter observes itself, with classic AND native (exponential) buckets.

prometheus_client cannot keep native histograms, so this module does, for every histogram
the exporter observes in the app's own paths (API request durations today; statement, task
and model-call durations later). One observation updates both representations; the family
carries both, so the protobuf encoder sends one `Histogram` message with classic and native
buckets while the text and OpenMetrics encoders show the classic buckets only.

    durations = Histograms("task_duration_seconds", "Task run time.", ["type"])
    durations.labels("email").observe(0.42)          # or observe(0.42, exemplar={...})
    yield durations.family()                         # in a collector's fetch()

Native buckets follow Prometheus's exponential schema: at schema `s` the bucket boundaries
are powers of 2^(2^-s), bucket `i` holds (base^(i-1), base^i], values with |v| <= the zero
threshold go to the zero bucket. When a series holds more than `max_buckets` buckets, its
resolution is halved (schema - 1, pairs of buckets merged), as client_golang does.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import BucketSpan, Exemplar, NativeHistogram, Sample
from prometheus_client.utils import floatToGoString

from collectors.checks import check_limit

#: prometheus_client's default classic buckets (seconds), which span API latencies.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

MIN_SCHEMA, MAX_SCHEMA = -4, 8


def _check_schema(value: int) -> int:
    if not MIN_SCHEMA <= value <= MAX_SCHEMA:
        raise ValueError(f"must be {MIN_SCHEMA} to {MAX_SCHEMA}, got {value}")
    return value


def _check_threshold(value: float) -> float:
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"must be a finite number >= 0, got {value}")
    return value


@dataclass(frozen=True)
class NativeSettings:
    """Resolution and limits of native buckets.

    schema 3 gives a bucket growth factor of 2^(1/8) ~ 1.09 (client_golang's default factor
    1.1); 160 buckets is client_golang's and OpenTelemetry's usual limit; the zero threshold
    2^-128 is client_golang's default.
    """

    schema: int = field(default=3, metadata={"check": _check_schema})
    max_buckets: int = field(default=160, metadata={"check": check_limit})
    zero_threshold: float = field(default=2.0**-128, metadata={"check": _check_threshold})

    def __post_init__(self) -> None:
        _check_schema(self.schema)
        check_limit(self.max_buckets)
        _check_threshold(self.zero_threshold)


def _fraction_bounds(schema: int) -> list[float]:
    """Upper bounds, as frexp fractions in [0.5, 1), of the 2^schema buckets in one octave."""
    steps = 1 << schema
    return [2.0 ** (j / steps - 1.0) for j in range(steps)]


_BOUNDS = {schema: _fraction_bounds(schema) for schema in range(1, MAX_SCHEMA + 1)}


def bucket_index(value: float, schema: int) -> int:
    """Index of the native bucket (base^(i-1), base^i] holding |value| (value not 0)."""
    fraction, exponent = math.frexp(abs(value))
    if schema > 0:
        bounds = _BOUNDS[schema]
        return bisect_left(bounds, fraction) + (exponent - 1) * len(bounds)
    index = exponent - 1 if fraction == 0.5 else exponent
    return (index + (1 << -schema) - 1) >> -schema


def bucket_bounds(index: int, schema: int) -> tuple[float, float]:
    """(lower, upper] of native bucket `index` at `schema` (for tests and docs)."""
    base = 2.0 ** (2.0**-schema)
    return base ** (index - 1), base**index


def _spans(counts: Mapping[int, int]) -> tuple[list[BucketSpan], list[int]]:
    """Spans and deltas of sparse buckets; gaps of one or two buckets are filled with zeros.

    The first span's offset is its first index, a later one's the empty buckets before it;
    deltas run over every bucket of every span (metrics.proto).
    """
    spans: list[list[int]] = []
    deltas: list[int] = []
    previous_index = previous_count = 0
    for index in sorted(counts):
        count = counts[index]
        gap = index - previous_index - 1
        if not spans:
            spans.append([index, 1])
        elif gap <= 2:
            for _ in range(gap):
                deltas.append(-previous_count)
                previous_count = 0
            spans[-1][1] += gap + 1
        else:
            spans.append([gap, 1])
        deltas.append(count - previous_count)
        previous_index, previous_count = index, count
    return [BucketSpan(offset, length) for offset, length in spans], deltas


class HistogramSeries:
    """One label set: classic cumulative buckets, native buckets, sum, count, exemplars."""

    def __init__(self, buckets: Sequence[float], native: NativeSettings | None) -> None:
        self.upper_bounds = [*buckets, math.inf]
        self.native = native
        self._lock = threading.Lock()
        self._classic = [0] * len(self.upper_bounds)
        self._exemplars: list[Exemplar | None] = [None] * len(self.upper_bounds)
        self._positive: dict[int, int] = {}
        self._negative: dict[int, int] = {}
        self._zero = 0
        self._sum = 0.0
        self._count = 0
        self.schema = native.schema if native else 0
        self.created = time.time()

    def observe(self, value: float, exemplar: dict[str, str] | None = None) -> None:
        """Count `value` in both representations; `exemplar` labels are kept per bucket."""
        slot = bisect_left(self.upper_bounds, value)
        native = self.native
        with self._lock:
            self._classic[slot] += 1
            self._sum += value
            self._count += 1
            if native is not None:
                if abs(value) <= native.zero_threshold:
                    self._zero += 1
                else:
                    side = self._positive if value > 0 else self._negative
                    index = bucket_index(value, self.schema)
                    before = side.get(index, 0)
                    side[index] = before + 1
                    if not before:  # a new bucket: within the limit?
                        self._limit(native.max_buckets)
            if exemplar is not None:  # kept as given: pass a fresh dict per observation
                self._exemplars[slot] = Exemplar(exemplar, value, time.time())

    def _limit(self, max_buckets: int) -> None:
        """Halve the resolution while there are too many buckets (lock held)."""
        while len(self._positive) + len(self._negative) > max_buckets and (
            self.schema > MIN_SCHEMA
        ):
            self.schema -= 1
            for side in (self._positive, self._negative):
                merged: dict[int, int] = {}
                for index, count in side.items():
                    wider = (index + 1) >> 1
                    merged[wider] = merged.get(wider, 0) + count
                side.clear()
                side.update(merged)

    def samples(self, name: str, labels: Mapping[str, str]) -> list[Sample]:
        """`_bucket`, `_count`, `_sum`, `_created` and one sample carrying the native buckets."""
        with self._lock:
            classic = list(self._classic)
            exemplars = list(self._exemplars)
            positive, negative = dict(self._positive), dict(self._negative)
            zero, total, count, schema = self._zero, self._sum, self._count, self.schema
        out = []
        cumulative = 0
        for bound, bucket_count, exemplar in zip(
            self.upper_bounds, classic, exemplars, strict=True
        ):
            cumulative += bucket_count
            le = {**labels, "le": floatToGoString(bound)}  # type: ignore[no-untyped-call]
            out.append(Sample(name + "_bucket", le, float(cumulative), None, exemplar))
        out.append(Sample(name + "_count", dict(labels), float(count)))
        out.append(Sample(name + "_sum", dict(labels), total))
        out.append(Sample(name + "_created", dict(labels), self.created))
        if self.native is not None:
            pos_spans, pos_deltas = _spans(positive)
            neg_spans, neg_deltas = _spans(negative)
            native = NativeHistogram(
                count_value=float(count),
                sum_value=total,
                schema=schema,
                zero_threshold=self.native.zero_threshold,
                zero_count=float(zero),
                pos_spans=pos_spans,
                neg_spans=neg_spans,
                pos_deltas=pos_deltas,
                neg_deltas=neg_deltas,
                nh_exemplars=[e for e in exemplars if e is not None],
            )
            out.append(Sample(name, dict(labels), float(count), None, None, native))
        return out


class Histograms:
    """A histogram family by label values: `labels(*values).observe(v)`, then `family()`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        native: NativeSettings | None = NativeSettings(),  # noqa: B008 - frozen, shared
        unit: str = "",
    ) -> None:
        bounds = [float(b) for b in buckets if not math.isinf(float(b))]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("buckets must be in increasing order")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(bounds)
        self.native = native
        self.unit = unit
        self._series: dict[tuple[str, ...], HistogramSeries] = {}
        self._lock = threading.Lock()

    def labels(self, *values: str) -> HistogramSeries:
        """The series of one label set (created on first use; keep it to skip the lookup)."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"expected {len(self.labelnames)} label values, got {len(values)}")
        series = self._series.get(values)
        if series is None:
            with self._lock:
                series = self._series.setdefault(values, HistogramSeries(self.buckets, self.native))
        return series

    def observe(self, value: float, exemplar: dict[str, str] | None = None) -> None:
        """For a family without labels."""
        self.labels().observe(value, exemplar)

    def family(self) -> Metric:
        """A prometheus_client histogram family with classic and native buckets per series."""
        metric = Metric(self.name, self.documentation, "histogram", self.unit)
        for values, series in list(self._series.items()):
            labels = dict(zip(self.labelnames, values, strict=True))
            metric.samples.extend(series.samples(self.name, labels))
        return metric
