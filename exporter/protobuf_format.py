"""The Prometheus protobuf exposition: length-delimited `io.prometheus.client.MetricFamily`.

Prometheus scrapes native histograms only in this format (it asks for it first when they are
enabled). Written by hand, field by field, instead of building protobuf-runtime messages:
benchmarks/exposition.py measured the runtime's message building at a fraction of this
writer's samples/s, and the schema is small and frozen (client_model's metrics.proto). A tag
byte is `field << 3 | wire type`: 0x0A is field 1 length-delimited, 0x11 field 2 double, 0x08
field 1 varint; the field each one writes is named where it is used. tests/test_protobuf_format.py
decodes the output with the `protobuf` runtime from a descriptor written independently in
tests/metrics_pb.py, and checks counters and gauges byte for byte against its serialization.

How prometheus_client families map (one `Metric` message per label set):

- counter -> COUNTER named `<name>_total`; `_created` -> `created_timestamp`, exemplar kept.
- gauge, info (`<name>_info`), stateset (one `Metric` per state) -> GAUGE; unknown -> UNTYPED.
- summary -> SUMMARY (`_count`, `_sum`, quantiles, `_created`).
- histogram / gaugehistogram -> HISTOGRAM / GAUGE_HISTOGRAM: `_bucket` (with exemplars),
  `_count`, `_sum` (`_gcount`, `_gsum`), `_created`, and the native buckets of a sample that
  carries a `native_histogram` (collectors/native_histogram.py), all in one `Histogram`.
- a sample timestamp -> `timestamp_ms`; the family unit -> `unit`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar, NativeHistogram, Sample, Timestamp

from exporter.name_escaping import UNDERSCORES, escape_name

CONTENT_TYPE = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)

# MetricType enum values.
_COUNTER, _GAUGE, _SUMMARY, _UNTYPED, _HISTOGRAM, _GAUGE_HISTOGRAM = range(6)
_TYPES = {
    "counter": _COUNTER,
    "gauge": _GAUGE,
    "info": _GAUGE,
    "stateset": _GAUGE,
    "summary": _SUMMARY,
    "unknown": _UNTYPED,
    "untyped": _UNTYPED,
    "histogram": _HISTOGRAM,
    "gaugehistogram": _GAUGE_HISTOGRAM,
}
_NAME_SUFFIX = {"counter": "_total", "info": "_info"}

_SMALL = [bytes((i,)) for i in range(128)]
_pack_double = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    """Base-128 varint; negative int64 values take ten bytes (two's complement)."""
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> bytes:
    """A sint32/sint64 varint."""
    return _varint(value << 1 if value >= 0 else ((-value) << 1) - 1)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: tag byte (field << 3 | 2, fields 1-15), length, payload."""
    size = len(payload)
    if size < 128:
        return _SMALL[tag] + _SMALL[size] + payload
    return _SMALL[tag] + _varint(size) + payload


def _double(tag: int, value: float) -> bytes:
    return _SMALL[tag] + _pack_double(value)


def _string(tag: int, text: str) -> bytes:
    return _field(tag, text.encode("utf-8"))


def _timestamp(seconds: float | Timestamp) -> bytes:
    """A google.protobuf.Timestamp message body."""
    if isinstance(seconds, Timestamp):
        whole, nanos = seconds.sec, seconds.nsec
    else:
        whole = math.floor(seconds)
        nanos = round((seconds - whole) * 1e9)
        if nanos >= 1_000_000_000:
            whole, nanos = whole + 1, nanos - 1_000_000_000
    return b"\x08" + _varint(whole) + (b"\x10" + _varint(nanos) if nanos else b"")


def _timestamp_ms(seconds: float | Timestamp) -> int:
    if isinstance(seconds, Timestamp):
        return seconds.sec * 1000 + seconds.nsec // 1_000_000
    return int(float(seconds) * 1000)


def _label_pair(name: str, value: str) -> bytes:
    return _field(0x0A, _string(0x0A, name) + _string(0x12, value))


def _exemplar(exemplar: Exemplar) -> bytes:
    body = b"".join(_label_pair(k, v) for k, v in sorted(exemplar.labels.items()))
    body += _double(0x11, float(exemplar.value))
    if exemplar.timestamp is not None:
        body += _field(0x1A, _timestamp(exemplar.timestamp))
    return body


def _span_items(spans: Sequence[Any]) -> list[bytes]:
    return [b"\x08" + _zigzag(offset) + b"\x10" + _varint(length) for offset, length in spans]


class _Labels:
    """Encoded `LabelPair`s of a sample, cached per label layout and per value (one scrape)."""

    def __init__(self, escaping: str) -> None:
        self.escaping = escaping
        self._layouts: dict[tuple[str, ...], tuple[tuple[str, bytes, dict[str, bytes]], ...]] = {}
        self._values: dict[str, dict[str, bytes]] = {}

    def encode(self, labels: Mapping[str, str], skip: str = "") -> bytes:
        if not labels:
            return b""
        key = tuple(labels)
        layout = self._layouts.get(key) if not skip else self._layouts.get((*key, "", skip))
        if layout is None:
            layout = tuple(
                (
                    name,
                    _string(0x0A, escape_name(name, self.escaping)),
                    self._values.setdefault(name, {}),
                )
                for name in sorted(key)
                if name != skip
            )
            self._layouts[key if not skip else (*key, "", skip)] = layout
        parts = []
        for name, name_part, cache in layout:
            value = labels[name]
            pair = cache.get(value)
            if pair is None:
                pair = cache[value] = _field(0x0A, name_part + _string(0x12, value))
            parts.append(pair)
        return b"".join(parts)


def _simple_metrics(family: Metric, labels: _Labels, value_tag: bytes) -> list[bytes]:
    """Gauge/untyped/info/stateset: one Metric per sample (`value_tag` = field, len 9, 0x09)."""
    out: list[bytes] = []
    append = out.append
    encode = labels.encode
    pack = _pack_double
    small = _SMALL
    for sample in family.samples:
        body = encode(sample.labels) + value_tag + pack(float(sample.value))
        if sample.timestamp is not None:
            body += b"\x30" + _varint(_timestamp_ms(sample.timestamp))
        size = len(body)
        append(b"\x22" + (small[size] if size < 128 else _varint(size)) + body)
    return out


def _grouped(samples: Iterable[Sample], labels: _Labels, skip: str) -> dict[bytes, list[Sample]]:
    """Samples by their label set (minus `le` / `quantile`), in first-seen order.

    A series' samples usually come one after the other: a sample whose labels (but `skip`)
    are the previous one's joins its group without encoding them again.
    """
    groups: dict[bytes, list[Sample]] = {}
    previous: Mapping[str, str] | None = None
    group: list[Sample] = []
    for sample in samples:
        current = sample.labels
        if previous is not None and _same_series(current, previous, skip):
            group.append(sample)
            continue
        key = labels.encode(current, skip if skip in current else "")
        group = groups.setdefault(key, [])
        group.append(sample)
        previous = current
    return groups


def _same_series(a: Mapping[str, str], b: Mapping[str, str], skip: str) -> bool:
    size = len(a) - (skip in a)
    if size != len(b) - (skip in b):
        return False
    for name, value in a.items():
        if name != skip and b.get(name) != value:
            return False
    return True


def _counter_metrics(family: Metric, labels: _Labels) -> list[bytes]:
    """Counters; the common case (no `_created`, exemplar or timestamp) in one fast pass."""
    encode = labels.encode
    pack = _pack_double
    small = _SMALL
    out: list[bytes] = []
    append = out.append
    for sample in family.samples:
        if sample.exemplar is not None or sample.timestamp is not None:
            return _counter_metrics_full(family, labels)
        if sample.name.endswith("_created"):
            return _counter_metrics_full(family, labels)
        body = encode(sample.labels) + b"\x1a\x09\x09" + pack(float(sample.value))
        size = len(body)
        append(b"\x22" + (small[size] if size < 128 else _varint(size)) + body)
    return out


def _counter_metrics_full(family: Metric, labels: _Labels) -> list[bytes]:
    created_name = family.name + "_created"
    totals: list[tuple[bytes, Sample]] = []
    created: dict[bytes, Sample] = {}
    for sample in family.samples:
        if sample.name == created_name:
            created[labels.encode(sample.labels)] = sample
        else:
            totals.append((labels.encode(sample.labels), sample))
    out = []
    for key, sample in totals:
        counter = _double(0x09, float(sample.value))
        if sample.exemplar is not None:
            counter += _field(0x12, _exemplar(sample.exemplar))
        if key in created:
            counter += _field(0x1A, _timestamp(created[key].value))
        body = key + _field(0x1A, counter)
        if sample.timestamp is not None:
            body += b"\x30" + _varint(_timestamp_ms(sample.timestamp))
        out.append(_field(0x22, body))
    return out


def _summary_metrics(family: Metric, labels: _Labels) -> list[bytes]:
    name = family.name
    out = []
    for key, samples in _grouped(family.samples, labels, "quantile").items():
        count, total, created, timestamp = 0.0, 0.0, None, None
        quantiles = []
        for sample in samples:
            if sample.name == name + "_count":
                count = float(sample.value)
            elif sample.name == name + "_sum":
                total = float(sample.value)
            elif sample.name == name + "_created":
                created = sample.value
            elif sample.name == name and "quantile" in sample.labels:
                quantile = float(sample.labels["quantile"])
                quantiles.append(
                    _field(0x1A, _double(0x09, quantile) + _double(0x11, float(sample.value)))
                )
            timestamp = sample.timestamp if sample.timestamp is not None else timestamp
        summary = b"\x08" + _varint(int(count)) + _double(0x11, total) + b"".join(quantiles)
        if created is not None:
            summary += _field(0x22, _timestamp(created))
        body = key + _field(0x22, summary)
        if timestamp is not None:
            body += b"\x30" + _varint(_timestamp_ms(timestamp))
        out.append(_field(0x22, body))
    return out


def _histogram_metrics(family: Metric, labels: _Labels) -> list[bytes]:
    name = family.name
    gauge = family.type == "gaugehistogram"
    count_name, sum_name = (
        (name + "_gcount", name + "_gsum") if gauge else (name + "_count", name + "_sum")
    )
    bucket_name = name + "_bucket"
    bounds: dict[str, bytes] = {}  # le text -> its encoded upper_bound field
    out = []
    for key, samples in _grouped(family.samples, labels, "le").items():
        count, total, created, timestamp = 0.0, 0.0, None, None
        native: NativeHistogram | None = None
        buckets = []
        for sample in samples:
            sname = sample.name
            if sname == bucket_name:
                le = sample.labels.get("le", "+Inf")
                bound = bounds.get(le)
                if bound is None:
                    bound = bounds[le] = _double(0x11, float(le))
                bucket = b"\x08" + _varint(int(sample.value)) + bound
                if sample.exemplar is not None:
                    bucket += _field(0x1A, _exemplar(sample.exemplar))
                buckets.append(
                    b"\x1a" + _SMALL[len(bucket)] + bucket
                    if len(bucket) < 128
                    else _field(0x1A, bucket)
                )
            elif sname == count_name:
                count = float(sample.value)
            elif sname == sum_name:
                total = float(sample.value)
            elif sname == name + "_created":
                created = sample.value
            elif sample.native_histogram is not None:
                native = sample.native_histogram
                count, total = float(native.count_value), float(native.sum_value)
            timestamp = sample.timestamp if sample.timestamp is not None else timestamp
        histogram = [b"\x08" + _varint(int(count)), _double(0x11, total), *buckets]
        if native is not None:
            histogram.append(_native_body(native))
        if created is not None:
            histogram.append(_field(0x7A, _timestamp(created)))
        if native is not None:
            for exemplar in native.nh_exemplars or ():
                if exemplar.timestamp is not None:  # metrics.proto: these MUST have one
                    histogram.append(b"\x82\x01" + _length(_exemplar(exemplar)))
        body = key + _field(0x3A, b"".join(histogram))
        if timestamp is not None:
            body += b"\x30" + _varint(_timestamp_ms(timestamp))
        out.append(_field(0x22, body))
    return out


def _packed_sint(values: Sequence[int]) -> bytes:
    """Packed sint64s; small ones (|v| < 64, the usual bucket deltas) in one step."""
    zigzagged = [(v << 1) ^ (v >> 63) for v in values]
    if not zigzagged or max(zigzagged) < 128:
        return bytes(zigzagged)
    return b"".join(_varint(v) for v in zigzagged)


def _length(payload: bytes) -> bytes:
    return _varint(len(payload)) + payload


def _native_body(native: NativeHistogram) -> bytes:
    """Histogram fields 5-14: schema, zero bucket, negative and positive spans and deltas."""
    body = [b"\x28" + _zigzag(native.schema), _double(0x31, float(native.zero_threshold))]
    body.append(b"\x38" + _varint(int(native.zero_count)))
    for spans, deltas, span_tag, delta_tag in (
        (native.neg_spans, native.neg_deltas, 0x4A, 0x52),
        (native.pos_spans, native.pos_deltas, 0x62, 0x6A),
    ):
        if spans:
            body.extend(_field(span_tag, item) for item in _span_items(spans))
            body.append(_field(delta_tag, _packed_sint(deltas or ())))
    if not native.pos_spans and not native.neg_spans:
        # A no-op span tells a native histogram without buckets from a classic one.
        body.append(_field(0x62, b"\x08\x00\x10\x00"))
    return b"".join(body)


_Encoder = Callable[[Metric, _Labels], list[bytes]]
_BY_TYPE: dict[int, _Encoder] = {
    _COUNTER: _counter_metrics,
    _SUMMARY: _summary_metrics,
    _HISTOGRAM: _histogram_metrics,
    _GAUGE_HISTOGRAM: _histogram_metrics,
}
_VALUE_TAGS = {_GAUGE: b"\x12\x09\x09", _UNTYPED: b"\x2a\x09\x09"}


def generate_protobuf(families: Iterable[Metric], escaping: str = UNDERSCORES) -> bytes:
    """Every family as one length-delimited MetricFamily message, in order.

    Names outside the legacy character set are escaped by `escaping` (name_escaping.py);
    `allow-utf-8` sends them as they are.
    """
    labels = _Labels(escaping)
    out: list[bytes] = []
    for family in families:
        mtype = _TYPES.get(family.type, _UNTYPED)
        encoder = _BY_TYPE.get(mtype)
        if encoder is None:
            metrics = _simple_metrics(family, labels, _VALUE_TAGS[mtype])
        else:
            metrics = encoder(family, labels)
        name = escape_name(family.name, escaping) + _NAME_SUFFIX.get(family.type, "")
        head = _string(0x0A, name) + _string(0x12, family.documentation)
        head += b"\x18" + _SMALL[mtype]
        tail = _string(0x2A, family.unit) if family.unit else b""
        message = b"".join((head, *metrics, tail))
        out.append(_varint(len(message)))
        out.append(message)
    return b"".join(out)
