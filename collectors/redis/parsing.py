"""Pure functions on what Redis sends: the text of `INFO` and the reply of `LATENCY HISTOGRAM`.

`parse_info` is a lean parser (about 4x cheaper than redis-py's typed `info()` parse, which
converts ~250 values nobody reads): values stay strings until the few exported ones are
converted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


def parse_info(text: str) -> dict[str, str]:
    """`INFO` text -> {field: raw value}. Section headers and blank lines are skipped.

    Values stay strings: converting is left to the few fields that are exported, which is
    where redis-py's typed parse spends its time.
    """
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key == "cmdstat_host":  # the `host:` pseudo-command has a colon in its name
            key, _, value = line.rpartition(":")
        info[key] = value
    return info


def parse_fields(value: str) -> dict[str, str]:
    """`calls=3,usec=12,...` (cmdstat, errorstat, db, slave lines) -> {key: raw value}."""
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, sep, raw = item.rpartition("=")
        if sep:
            fields[key] = raw
    return fields


@dataclass(frozen=True)
class CommandLatency:
    """One command's `LATENCY HISTOGRAM` entry: calls, and cumulative counts per bucket."""

    calls: int
    #: (upper bound in microseconds, calls that took at most that long), ascending
    buckets: tuple[tuple[int, int], ...]


def _pairs(reply: Any) -> Iterator[tuple[Any, Any]]:
    """Key/value pairs from a RESP3 map (dict) or a RESP2 flat array."""
    if isinstance(reply, Mapping):
        yield from reply.items()
        return
    items = list(reply)
    yield from zip(items[0::2], items[1::2], strict=True)


def text(value: Any) -> str:
    """A reply (bytes, or str from a decoding client) as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse_latency_histogram(reply: Any) -> dict[str, CommandLatency]:
    """`LATENCY HISTOGRAM` reply -> {command: CommandLatency} (Redis 7+)."""
    result: dict[str, CommandLatency] = {}
    for name, detail in _pairs(reply):
        fields = {text(k): v for k, v in _pairs(detail)}
        buckets = tuple(
            sorted((int(bound), int(count)) for bound, count in _pairs(fields["histogram_usec"]))
        )
        result[text(name).lower()] = CommandLatency(int(fields["calls"]), buckets)
    return result
