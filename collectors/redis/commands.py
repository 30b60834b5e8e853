"""Per-command statistics: `cmdstat_*` lines and the latency histogram, within a series budget,
and the duration histogram family built from them.

Commands beyond the budget are folded under `command="other"` so totals stay right while the
number of series stays bounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import NamedTuple

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collectors.redis.fields import LABEL
from collectors.redis.parsing import CommandLatency, parse_fields

OTHER = "other"


class CommandStats(NamedTuple):
    calls: float
    seconds: float
    rejected: float
    failed: float


#: A `cmdstat_` value as Redis >= 6.2 writes it; other shapes take the general parse.
_PLAIN_CMDSTAT = re.compile(
    r"calls=([0-9]+),usec=([0-9]+),usec_per_call=[^,=]*,rejected_calls=([0-9]+),failed_calls=([0-9]+)"
)


def command_stats(
    info: Mapping[str, str], skipped: list[str] | None = None
) -> dict[str, CommandStats]:
    """`cmdstat_<command>` lines -> {command: stats}; subcommands look like `config|get`.

    A line with a value that is not a counter's (`calls=ABC`, `nan`, `-1`) is left out and
    named in `skipped`: one bad line costs that command's series, not the instance.
    """
    result: dict[str, CommandStats] = {}
    plain = _PLAIN_CMDSTAT.fullmatch
    isfinite = math.isfinite
    for key, value in info.items():
        if not key.startswith("cmdstat_"):
            continue
        match = plain(value)
        if match is not None:  # digits only: never negative, finite unless absurdly long
            calls, usec, rejected, failed = map(float, match.groups())
            if isfinite(calls + usec + rejected + failed):
                result[key[8:]] = CommandStats(calls, usec / 1e6, rejected, failed)
            elif skipped is not None:
                skipped.append(key)
            continue
        fields = parse_fields(value)
        try:
            calls = float(fields.get("calls", 0))
            usec = float(fields.get("usec", 0))
            rejected = float(fields.get("rejected_calls", 0))  # 6.2
            failed = float(fields.get("failed_calls", 0))  # 6.2
        except ValueError:
            calls = math.nan
        # all finite and none negative (a NaN fails the comparison or makes the sum NaN)
        if (
            calls >= 0
            and min(usec, rejected, failed) >= 0
            and math.isfinite(calls + usec + rejected + failed)
        ):
            result[key[8:]] = CommandStats(calls, usec / 1e6, rejected, failed)
        elif skipped is not None:
            skipped.append(key)
    return result


def fold_commands(
    stats: Mapping[str, CommandStats], kept: frozenset[str]
) -> dict[str, CommandStats]:
    """Stats of the kept commands, the others summed under `other`."""
    result = {cmd: s for cmd, s in stats.items() if cmd in kept}
    rest = [s for cmd, s in stats.items() if cmd not in kept]
    if rest:
        result[OTHER] = CommandStats(
            calls=sum(s.calls for s in rest),
            seconds=sum(s.seconds for s in rest),
            rejected=sum(s.rejected for s in rest),
            failed=sum(s.failed for s in rest),
        )
    return result


def _bound_index(usec: int) -> int:
    """j of the smallest power of four 4**j >= `usec` (0 for 0 and 1)."""
    return ((usec - 1).bit_length() + 1) >> 1 if usec > 1 else 0


def _folded_counts(
    histograms: Mapping[str, CommandLatency], kept: frozenset[str]
) -> tuple[int, dict[str, tuple[int, list[int]]]]:
    """(number of bounds, {command or `other`: (calls, cumulative count per bound)}).

    Each of Redis's buckets adds its increment over the one before to the first power of four
    at or above its bound; a running sum of those is the command's count filled forward onto
    the powers of four (what `fold_histograms` documents), in one pass over the buckets.
    """
    top = max((b[-1][0] for h in histograms.values() if (b := h.buckets)), default=1)
    size = _bound_index(top) + 1
    grouped: dict[str, tuple[int, list[int]]] = {}
    for cmd, h in histograms.items():
        key = cmd if cmd in kept else OTHER
        entry = grouped.get(key)
        if entry is None:
            entry = grouped[key] = (h.calls, [0] * size)
        else:
            grouped[key] = (entry[0] + h.calls, entry[1])
        increments, previous = entry[1], 0
        for bound, count in h.buckets:  # _bound_index(bound), inlined: the innermost loop
            increments[((bound - 1).bit_length() + 1) >> 1 if bound > 1 else 0] += count - previous
            previous = count
    return size, {
        cmd: (calls, list(accumulate(increments))) for cmd, (calls, increments) in grouped.items()
    }


def fold_histograms(
    histograms: Mapping[str, CommandLatency], kept: frozenset[str]
) -> dict[str, tuple[int, list[tuple[float, int]]]]:
    """{command: (calls, [(bound seconds, cumulative count)...])} on one shared set of bounds.

    Redis reports only the power-of-two buckets (in microseconds) where a command's count
    changes. Every command is filled forward onto the powers of four from 1 us up to the largest
    bucket seen, so the series share their `le` values, folded commands add up, and a family
    costs half the series of Redis's own resolution (each bound is one of Redis's, so counts
    stay exact).
    """
    if not histograms:
        return {}
    size, folded = _folded_counts(histograms, kept)
    seconds = _bound_seconds(size)
    return {
        cmd: (calls, list(zip(seconds, counts, strict=True)))
        for cmd, (calls, counts) in folded.items()
    }


#: Bucket bounds in seconds (4**j us) and their `le` label values, grown on demand.
_SECONDS: list[float] = []
_LES: list[str] = []


def _bound_seconds(size: int) -> list[float]:
    while len(_SECONDS) < size:
        bound = 4 ** len(_SECONDS) / 1e6
        _LES.append(_go_float(bound))
        _SECONDS.append(bound)
    return _SECONDS[:size]


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (`1e-06`, `0.000256`), like prometheus_client."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def histogram_family(
    family: Metric,
    histograms: Mapping[str, CommandLatency],
    stats: Mapping[str, CommandStats],
    kept: frozenset[str],
    instance: str,
) -> None:
    """Samples are built directly: `add_metric` costs ~3x as much per bucket, and this family
    has more samples than all the others together."""
    if not histograms:
        return
    name = family.name
    size, folded = _folded_counts(histograms, kept)
    _bound_seconds(size)
    les = _LES[:size]
    other_seconds = sum(s.seconds for cmd, s in stats.items() if cmd not in kept)
    bucket, total, seconds_sum = f"{name}_bucket", f"{name}_count", f"{name}_sum"
    append = family.samples.append
    for cmd, (calls, counts) in sorted(folded.items()):
        for le, count in zip(les, counts, strict=True):
            append(Sample(bucket, {LABEL: instance, "command": cmd, "le": le}, float(count)))
        labels = {LABEL: instance, "command": cmd}
        append(Sample(bucket, {LABEL: instance, "command": cmd, "le": "+Inf"}, float(calls)))
        append(Sample(total, labels, float(calls)))
        stat = stats.get(cmd)
        seconds = other_seconds if cmd == OTHER else (stat.seconds if stat else 0.0)
        append(Sample(seconds_sum, labels, seconds))
