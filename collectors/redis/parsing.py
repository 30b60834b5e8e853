"""Pure functions on what Redis sends: the text of `INFO` and the reply of `LATENCY HISTOGRAM`.

`parse_info` is a lean parser (about 4x cheaper than redis-py's typed `info()` parse, which
converts ~250 values nobody reads): values stay strings until the few exported ones are
converted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from operator import lt
from typing import Any, NamedTuple


def parse_info(text: str) -> dict[str, str]:
    """`INFO` text -> {field: raw value}. Section headers and blank lines are skipped.

    Values stay strings: converting is left to the few fields that are exported, which is
    where redis-py's typed parse spends its time.
    """
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")  # headers (`# Server`) and blanks have none
        if sep:
            info[key] = value
    # the `host:` pseudo-command has a colon in its name: `cmdstat_host::calls=...`
    host = info.get("cmdstat_host")
    if host is not None and host.startswith(":"):
        info["cmdstat_host:"] = info.pop("cmdstat_host")[1:]
    return info


def parse_fields(value: str) -> dict[str, str]:
    """`calls=3,usec=12,...` (cmdstat, errorstat, db, slave lines) -> {key: raw value}."""
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, sep, raw = item.rpartition("=")
        if sep:
            fields[key] = raw
    return fields


def sample_value(value: float, *, counter: bool) -> float | None:
    """`value` if a sample may carry it (finite; for a counter, not negative), else None."""
    if not math.isfinite(value) or (counter and value < 0):
        return None
    return value


def number(raw: str, *, counter: bool) -> float | None:
    """A raw INFO value as a sample value, or None when it is not one (`ABC`, `nan`, `-1`)."""
    try:
        return sample_value(float(raw), counter=counter)
    except ValueError:
        return None


class CommandLatency(NamedTuple):
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


def parse_latency_histogram(
    reply: Any,
    skipped: list[str] | None = None,
    reuse: dict[Any, tuple[Any, tuple[str, CommandLatency | None]]] | None = None,
) -> dict[str, CommandLatency]:
    """`LATENCY HISTOGRAM` reply -> {command: CommandLatency} (Redis 7+). A command whose
    entry is malformed is left out (and named in `skipped`).

    Entries shaped as Redis sends them (integers only) take `_plain_entry`, a few C-level
    calls per command; anything else goes through the general, checking path. `reuse`
    (`Reuse.histograms`) holds the previous scrapes' parses: an entry equal to the one last
    seen for its command is not parsed again (values equal under == parse the same).
    """
    result: dict[str, CommandLatency] = {}
    if isinstance(reply, list) and len(reply) % 2 == 0:
        entries: Any = zip(reply[0::2], reply[1::2], strict=True)
    else:
        entries = _pairs(reply)
    for name, detail in entries:
        if reuse is None or type(name) is not bytes:  # a key for `reuse`: bytes, as sent
            command, entry = _histogram_entry(name, detail)
        else:
            found = reuse.get(name)
            if found is not None and found[0] == detail:
                command, entry = found[1]
            else:
                command, entry = parsed = _histogram_entry(name, detail)
                reuse[name] = (detail, parsed)
        if entry is None:
            if skipped is not None:
                skipped.append(f"latency_histogram_{command}")
        else:
            result[command] = entry
    return result


def _histogram_entry(name: Any, detail: Any) -> tuple[str, CommandLatency | None]:
    """(command in lower case, its entry or None when malformed)."""
    entry = _plain_entry(detail)
    if entry is None:
        entry = _checked_entry(detail)
    command = name.decode("utf-8", "replace") if type(name) is bytes else text(name)
    return command.lower(), entry


_CALLS, _HISTOGRAM = b"calls", b"histogram_usec"
_new = tuple.__new__  # CommandLatency(calls, pairs) without the namedtuple's Python __new__


def _plain_entry(detail: Any) -> CommandLatency | None:
    """The entry as Redis 7 sends it (RESP2 `[calls, N, histogram_usec, [b, n, ...]]` or the
    RESP3 maps, non-negative integers only), else None: `_checked_entry` decides."""
    if type(detail) is list:
        if len(detail) != 4 or detail[0] != _CALLS or detail[2] != _HISTOGRAM:
            return None
        calls, flat = detail[1], detail[3]
        if type(flat) is not list or len(flat) % 2:
            return None
        values = flat
    elif type(detail) is dict:
        if len(detail) != 2:
            return None
        calls, histogram = detail.get(_CALLS), detail.get(_HISTOGRAM)
        if type(histogram) is not dict:
            return None
        flat = histogram
        values = [*histogram.keys(), *histogram.values()]
    else:
        return None
    if type(calls) is not int or calls < 0:
        return None
    if values and (set(map(type, values)) != {int} or min(values) < 0):
        return None
    if type(flat) is list:
        bounds = flat[0::2]
        pairs = tuple(zip(bounds, flat[1::2], strict=True))
    else:
        bounds = list(flat)
        pairs = tuple(flat.items())
    if all(map(lt, bounds, bounds[1:])):  # ascending, as Redis sends them: sorted already
        return _new(CommandLatency, (calls, pairs))
    return _new(CommandLatency, (calls, tuple(sorted(pairs))))


def _checked_entry(detail: Any) -> CommandLatency | None:
    try:
        fields = {text(k): v for k, v in _pairs(detail)}
        pairs = _pairs(fields["histogram_usec"])
        buckets = tuple(sorted((_count(bound), _count(count)) for bound, count in pairs))
        return CommandLatency(_count(fields["calls"]), buckets)
    except (KeyError, TypeError, ValueError):
        return None


def _count(value: Any) -> int:
    count = int(value)
    if count < 0:
        raise ValueError(f"negative count {count}")
    return count
