"""io.prometheus.client metrics messages for the `protobuf` runtime, built from a descriptor.

An independent reading of client_model's metrics.proto (field numbers and types written out
here from the schema, not shared with exporter/protobuf_format.py), so the tests decode the
exporter's hand-written bytes with Google's own parser. No .proto file or protoc needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]

F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED

# message -> [(field name, number, type, label, message type name or None)]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "Timestamp": [
        ("seconds", 1, F.TYPE_INT64, OPTIONAL, None),
        ("nanos", 2, F.TYPE_INT32, OPTIONAL, None),
    ],
    "LabelPair": [
        ("name", 1, F.TYPE_STRING, OPTIONAL, None),
        ("value", 2, F.TYPE_STRING, OPTIONAL, None),
    ],
    "Gauge": [("value", 1, F.TYPE_DOUBLE, OPTIONAL, None)],
    "Counter": [
        ("value", 1, F.TYPE_DOUBLE, OPTIONAL, None),
        ("exemplar", 2, F.TYPE_MESSAGE, OPTIONAL, "Exemplar"),
        ("created_timestamp", 3, F.TYPE_MESSAGE, OPTIONAL, "Timestamp"),
    ],
    "Quantile": [
        ("quantile", 1, F.TYPE_DOUBLE, OPTIONAL, None),
        ("value", 2, F.TYPE_DOUBLE, OPTIONAL, None),
    ],
    "Summary": [
        ("sample_count", 1, F.TYPE_UINT64, OPTIONAL, None),
        ("sample_sum", 2, F.TYPE_DOUBLE, OPTIONAL, None),
        ("quantile", 3, F.TYPE_MESSAGE, REPEATED, "Quantile"),
        ("created_timestamp", 4, F.TYPE_MESSAGE, OPTIONAL, "Timestamp"),
    ],
    "Untyped": [("value", 1, F.TYPE_DOUBLE, OPTIONAL, None)],
    "Histogram": [
        ("sample_count", 1, F.TYPE_UINT64, OPTIONAL, None),
        ("sample_count_float", 4, F.TYPE_DOUBLE, OPTIONAL, None),
        ("sample_sum", 2, F.TYPE_DOUBLE, OPTIONAL, None),
        ("bucket", 3, F.TYPE_MESSAGE, REPEATED, "Bucket"),
        ("created_timestamp", 15, F.TYPE_MESSAGE, OPTIONAL, "Timestamp"),
        ("schema", 5, F.TYPE_SINT32, OPTIONAL, None),
        ("zero_threshold", 6, F.TYPE_DOUBLE, OPTIONAL, None),
        ("zero_count", 7, F.TYPE_UINT64, OPTIONAL, None),
        ("zero_count_float", 8, F.TYPE_DOUBLE, OPTIONAL, None),
        ("negative_span", 9, F.TYPE_MESSAGE, REPEATED, "BucketSpan"),
        ("negative_delta", 10, F.TYPE_SINT64, REPEATED, None),
        ("negative_count", 11, F.TYPE_DOUBLE, REPEATED, None),
        ("positive_span", 12, F.TYPE_MESSAGE, REPEATED, "BucketSpan"),
        ("positive_delta", 13, F.TYPE_SINT64, REPEATED, None),
        ("positive_count", 14, F.TYPE_DOUBLE, REPEATED, None),
        ("exemplars", 16, F.TYPE_MESSAGE, REPEATED, "Exemplar"),
    ],
    "Bucket": [
        ("cumulative_count", 1, F.TYPE_UINT64, OPTIONAL, None),
        ("cumulative_count_float", 4, F.TYPE_DOUBLE, OPTIONAL, None),
        ("upper_bound", 2, F.TYPE_DOUBLE, OPTIONAL, None),
        ("exemplar", 3, F.TYPE_MESSAGE, OPTIONAL, "Exemplar"),
    ],
    "BucketSpan": [
        ("offset", 1, F.TYPE_SINT32, OPTIONAL, None),
        ("length", 2, F.TYPE_UINT32, OPTIONAL, None),
    ],
    "Exemplar": [
        ("label", 1, F.TYPE_MESSAGE, REPEATED, "LabelPair"),
        ("value", 2, F.TYPE_DOUBLE, OPTIONAL, None),
        ("timestamp", 3, F.TYPE_MESSAGE, OPTIONAL, "Timestamp"),
    ],
    "Metric": [
        ("label", 1, F.TYPE_MESSAGE, REPEATED, "LabelPair"),
        ("gauge", 2, F.TYPE_MESSAGE, OPTIONAL, "Gauge"),
        ("counter", 3, F.TYPE_MESSAGE, OPTIONAL, "Counter"),
        ("summary", 4, F.TYPE_MESSAGE, OPTIONAL, "Summary"),
        ("untyped", 5, F.TYPE_MESSAGE, OPTIONAL, "Untyped"),
        ("histogram", 7, F.TYPE_MESSAGE, OPTIONAL, "Histogram"),
        ("timestamp_ms", 6, F.TYPE_INT64, OPTIONAL, None),
    ],
    "MetricFamily": [
        ("name", 1, F.TYPE_STRING, OPTIONAL, None),
        ("help", 2, F.TYPE_STRING, OPTIONAL, None),
        ("type", 3, F.TYPE_ENUM, OPTIONAL, "MetricType"),
        ("metric", 4, F.TYPE_MESSAGE, REPEATED, "Metric"),
        ("unit", 5, F.TYPE_STRING, OPTIONAL, None),
    ],
}
TYPES = ["COUNTER", "GAUGE", "SUMMARY", "UNTYPED", "HISTOGRAM", "GAUGE_HISTOGRAM"]
_PACKAGE = "afirgen.test.client"


def _build() -> dict[str, Any]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="afirgen_test_metrics.proto", package=_PACKAGE, syntax="proto2"
    )
    enum = proto.enum_type.add(name="MetricType")
    for number, name in enumerate(TYPES):
        enum.value.add(name=name, number=number)
    for message, fields in _MESSAGES.items():
        descriptor = proto.message_type.add(name=message)
        for name, number, ftype, label, type_name in fields:
            field = descriptor.field.add(name=name, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in _MESSAGES
    }


CLASSES = _build()
MetricFamily = CLASSES["MetricFamily"]


def parse_delimited(body: bytes) -> list[Any]:
    """Every MetricFamily of a delimited body; fails on trailing garbage."""
    return list(_iter_delimited(body))


def _iter_delimited(body: bytes) -> Iterator[Any]:
    pos = 0
    while pos < len(body):
        size, pos = _DecodeVarint(body, pos)
        assert pos + size <= len(body), "truncated message"
        family = MetricFamily()
        family.ParseFromString(body[pos : pos + size])
        yield family
        pos += size


def labels(metric: Any) -> dict[str, str]:
    return {pair.name: pair.value for pair in metric.label}


def by_name(body: bytes) -> dict[str, Any]:
    return {family.name: family for family in parse_delimited(body)}
