"""exporter/protobuf_format.py, decoded by Google's protobuf runtime (tests/metrics_pb.py).

Every sample the text format shows (prometheus_client's own encoder, parsed back by its parser)
must come out of the decoded protobuf with the same name, labels and value; native buckets,
exemplars, created timestamps and escaping are checked field by field.
"""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from google.protobuf.internal.encoder import _VarintBytes  # type: ignore[attr-defined]
from prometheus_client import CollectorRegistry, Counter, exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Exemplar, Sample

from collectors.base import Deadline
from collectors.native_histogram import Histograms, NativeSettings
from exporter.config import read_config
from exporter.exposition import Format, encode
from exporter.protobuf_format import generate_protobuf
from exporter.state import Exporter
from tests import metrics_pb
from tests.support import ROOT
from tests.test_text_format import Families, varied_families


def number(value: float) -> str:
    return "NaN" if math.isnan(value) else repr(float(value))


def normal(labels: dict[str, str]) -> frozenset:
    """Labels with `le` / `quantile` as numbers (text keeps them as written)."""
    return frozenset(
        (k, number(float(v)) if k in ("le", "quantile") else v) for k, v in labels.items()
    )


def text_samples(families) -> set:
    body = exposition.generate_latest(Families(families)).decode()
    return {
        (s.name, normal(s.labels), number(s.value))
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def created_seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def proto_samples(body: bytes) -> set:
    """The decoded messages, spelled out as the text format's samples."""
    out = set()
    for family in metrics_pb.parse_delimited(body):
        kind = metrics_pb.TYPES[family.type]
        name = family.name
        for metric in family.metric:
            labels = metrics_pb.labels(metric)

            def add(sample_name, value, extra=None, labels=labels):
                out.add((sample_name, normal({**labels, **(extra or {})}), number(value)))

            if kind == "COUNTER":
                add(name, metric.counter.value)
                if metric.counter.HasField("created_timestamp"):
                    base = name.removesuffix("_total")
                    add(base + "_created", created_seconds(metric.counter.created_timestamp))
            elif kind == "GAUGE":
                add(name, metric.gauge.value)
            elif kind == "UNTYPED":
                add(name, metric.untyped.value)
            elif kind == "SUMMARY":
                add(name + "_count", metric.summary.sample_count)
                add(name + "_sum", metric.summary.sample_sum)
                for q in metric.summary.quantile:
                    add(name, q.value, {"quantile": str(q.quantile)})
            else:
                h = metric.histogram
                gauge = kind == "GAUGE_HISTOGRAM"
                add(name + ("_gcount" if gauge else "_count"), h.sample_count)
                add(name + ("_gsum" if gauge else "_sum"), h.sample_sum)
                for b in h.bucket:
                    add(name + "_bucket", b.cumulative_count, {"le": str(b.upper_bound)})
    return out


@pytest.mark.parametrize("seed", range(5))
def test_every_text_sample_is_in_the_decoded_protobuf(seed):
    families = varied_families(seed)
    body = generate_protobuf(families)
    assert proto_samples(body) == text_samples(families)


def test_types_names_units_and_timestamps():
    families = varied_families(3)
    unit = GaugeMetricFamily("disk_bytes", "Disk.", value=1.0, unit="bytes")
    decoded = metrics_pb.by_name(generate_protobuf([*families, unit]))
    types = {name: metrics_pb.TYPES[f.type] for name, f in decoded.items()}
    assert types == {
        "ops_total": "COUNTER",
        "level": "GAUGE",
        "lat_seconds": "HISTOGRAM",
        "gh": "GAUGE_HISTOGRAM",
        "req": "SUMMARY",
        "build_info": "GAUGE",
        "state": "GAUGE",
        "mystery": "UNTYPED",
        "weird:name": "GAUGE",
        "scalar": "GAUGE",
        "disk_bytes": "GAUGE",
    }
    assert decoded["disk_bytes"].unit == "bytes"
    assert decoded["ops_total"].help == "Ops with a \\ and a\nnewline."
    counter = next(f for f in families if f.name == "ops")
    stamped = {
        metrics_pb.labels(m)["a"]: m.timestamp_ms
        for m in decoded["ops_total"].metric
        if m.HasField("timestamp_ms")
    }
    expected = {
        s.labels["a"]: int(s.timestamp * 1000)
        for s in counter.samples
        if s.timestamp is not None and s.name == "ops_total"
    }
    assert stamped == expected and expected


def test_live_counter_created_timestamp_and_exemplar():
    registry = CollectorRegistry()
    hits = Counter("hits", "Hits.", ["route"], registry=registry)
    hits.labels("/x").inc(2, exemplar={"trace_id": "abc"})
    family = next(f for f in registry.collect() if f.name == "hits")
    created = next(s.value for s in family.samples if s.name == "hits_created")
    (metric,) = metrics_pb.by_name(generate_protobuf([family]))["hits_total"].metric
    assert metric.counter.value == 2
    assert abs(created_seconds(metric.counter.created_timestamp) - created) < 1e-6
    assert metrics_pb.labels(metric.counter.exemplar) == {"trace_id": "abc"}
    assert metric.counter.exemplar.value == 2


def test_long_values_and_many_samples_keep_their_lengths():
    family = CounterMetricFamily("big", "Big.", labels=["key"])
    rng = random.Random(1)
    values = {}
    for i in range(5000):
        key = f"k{i}-" + "x" * rng.choice([0, 100, 200, 20000])
        values[key] = float(i)
        family.add_metric([key], float(i))
    (decoded,) = metrics_pb.parse_delimited(generate_protobuf([family]))
    assert {metrics_pb.labels(m)["key"]: m.counter.value for m in decoded.metric} == values


def test_negative_timestamp():
    family = Metric("old", "Before 1970.", "gauge")
    family.samples.append(Sample("old", {}, 1.0, -12.5))
    (decoded,) = metrics_pb.parse_delimited(generate_protobuf([family]))
    assert decoded.metric[0].timestamp_ms == -12500


def buckets_of(spans, deltas) -> dict[int, int]:
    """Native bucket index -> count, from spans and deltas (independent of the encoder)."""
    counts, index, count, position = {}, 0, 0, 0
    for span in spans:
        index += span.offset  # the first span: start index; later: the gap before it
        for _ in range(span.length):
            count += deltas[position]
            position += 1
            if count:
                counts[index] = count
            index += 1
    assert position == len(deltas)
    return counts


def test_native_buckets_decode_to_the_observed_values():
    rng = random.Random(7)
    values = [rng.lognormvariate(-3, 1.5) for _ in range(3000)]
    values += [0.0] * 5 + [-0.5, -0.5, -2.0]
    histogram = Histograms(
        "lat_seconds", "Latency.", ["op"], native=NativeSettings(schema=3, max_buckets=1000)
    )
    series = histogram.labels("get")
    for value in values:
        series.observe(value, exemplar={"trace_id": "t1"} if value > 5 else None)
    (metric,) = metrics_pb.by_name(generate_protobuf([histogram.family()]))["lat_seconds"].metric
    h = metric.histogram
    assert (h.sample_count, h.schema, h.zero_count) == (len(values), 3, 5)
    assert math.isclose(h.sample_sum, sum(values))
    assert h.zero_threshold == 2.0**-128

    def index(v: float) -> int:  # bucket (2^((i-1)/8), 2^(i/8)] of |v| at schema 3
        return math.ceil(math.log2(abs(v)) * 8)

    expected_pos: dict[int, int] = {}
    expected_neg: dict[int, int] = {}
    for v in values:
        if v:
            side = expected_pos if v > 0 else expected_neg
            side[index(v)] = side.get(index(v), 0) + 1
    assert buckets_of(h.positive_span, h.positive_delta) == expected_pos
    assert buckets_of(h.negative_span, h.negative_delta) == expected_neg
    # classic buckets alongside, cumulative, +Inf = count
    assert h.bucket[-1].upper_bound == math.inf and h.bucket[-1].cumulative_count == len(values)
    assert h.bucket[0].cumulative_count == sum(1 for v in values if v <= 0.005)
    assert h.created_timestamp.seconds > 0
    assert all(metrics_pb.labels(e) == {"trace_id": "t1"} and e.value > 5 for e in h.exemplars)
    assert h.exemplars


def test_native_histogram_without_observations_has_a_no_op_span():
    histogram = Histograms("idle_seconds", "Idle.")
    histogram.labels()
    (metric,) = metrics_pb.by_name(generate_protobuf([histogram.family()]))["idle_seconds"].metric
    spans = [(s.offset, s.length) for s in metric.histogram.positive_span]
    assert spans == [(0, 0)] and metric.histogram.sample_count == 0


def test_escaping_of_utf8_names():
    family = GaugeMetricFamily("my.gauge", "UTF-8.", labels=["host.name"])
    family.add_metric(["a.b"], 1.0)
    expected = {
        "allow-utf-8": ("my.gauge", "host.name"),
        "underscores": ("my_gauge", "host_name"),
        "dots": ("my_dot_gauge", "host_dot_name"),
        "values": ("U__my_2e_gauge", "U__host_2e_name"),
    }
    for scheme, (name, label) in expected.items():
        (decoded,) = metrics_pb.parse_delimited(generate_protobuf([family], scheme))
        assert decoded.name == name, scheme
        assert metrics_pb.labels(decoded.metric[0]) == {label: "a.b"}, scheme


def test_exemplar_with_timestamp_on_a_bucket():
    family = Metric("h", "H.", "histogram")
    family.samples.append(
        Sample("h_bucket", {"le": "1.0"}, 1.0, None, Exemplar({"id": "x"}, 0.5, 1.7e9))
    )
    family.samples.append(Sample("h_bucket", {"le": "+Inf"}, 1.0))
    family.samples.append(Sample("h_count", {}, 1.0))
    family.samples.append(Sample("h_sum", {}, 0.5))
    (metric,) = metrics_pb.parse_delimited(generate_protobuf([family]))[0].metric
    exemplar = metric.histogram.bucket[0].exemplar
    assert (metrics_pb.labels(exemplar), exemplar.value, exemplar.timestamp.seconds) == (
        {"id": "x"},
        0.5,
        1_700_000_000,
    )


def test_bytes_equal_the_runtime_serialization_of_the_same_messages():
    """Counters and gauges built as runtime messages serialize to exactly our bytes."""
    counter = CounterMetricFamily("ops", "Ops.", labels=["b", "a"])
    gauge = GaugeMetricFamily("level", "Level.", labels=["x"])
    rng = random.Random(5)
    for i in range(300):
        counter.add_metric([f"b{i}", "ü" * rng.choice([1, 70])], rng.random() * 1e6)
        gauge.add_metric([f"x{i}"], -i / 7)
    expected = b""
    for family, kind in ((counter, 0), (gauge, 1)):
        message = metrics_pb.MetricFamily(
            name=family.name + ("_total" if kind == 0 else ""), help=family.documentation, type=kind
        )
        for sample in family.samples:
            metric = message.metric.add()
            for name in sorted(sample.labels):
                metric.label.add(name=name, value=sample.labels[name])
            (metric.counter if kind == 0 else metric.gauge).value = sample.value
        body = message.SerializeToString()
        expected += _VarintBytes(len(body)) + body
    assert generate_protobuf([counter, gauge]) == expected


def test_a_whole_real_scrape_says_the_same_in_protobuf_and_text():
    """Every collector of the example config against this host's services: one set of
    families, encoded both ways, must hold the same samples (no family misnames its samples)."""
    config = read_config(ROOT / "exporter.example.yml")
    exporter = Exporter(config)
    try:
        engine = exporter.loaded.engine
        families = asyncio.run(
            engine.metrics_families(exporter.loaded.metrics_units(), Deadline.after(20))
        )
    finally:
        exporter.loaded.engine.close()
    kinds = {f.name.split("_")[0] for f in families}
    assert {"db", "cache", "system", "process", "afirgen"} <= kinds, kinds
    body = encode(families, Format.PROTOBUF)
    assert proto_samples(body) == text_samples(families)
    names = [f.name for f in metrics_pb.parse_delimited(body)]
    assert len(names) == len(set(names))  # one message per family
