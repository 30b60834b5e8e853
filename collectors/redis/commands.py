"""Per-command statistics: `cmdstat_*` lines and the latency histogram, within a series budget,
and the duration histogram family built from them.

Commands beyond the budget are folded under `command="other"` so totals stay right while the
number of series stays bounded.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from itertools import accumulate
from operator import add
from typing import TYPE_CHECKING, NamedTuple

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collectors.redis.fields import LABEL
from collectors.redis.parsing import CommandLatency, parse_fields
from collectors.redis.samples import new_tuple

if TYPE_CHECKING:
    from collectors.redis.reuse import Reuse

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
    info: Mapping[str, str],
    skipped: list[str] | None = None,
    reuse: dict[str, tuple[str, CommandStats | None]] | None = None,
) -> dict[str, CommandStats]:
    """`cmdstat_<command>` lines -> {command: stats}; subcommands look like `config|get`.

    A line with a value that is not a counter's (`calls=ABC`, `nan`, `-1`) is left out and
    named in `skipped`: one bad line costs that command's series, not the instance. `reuse`
    (`Reuse.cmdstats`) holds the previous scrapes' parses: a line that did not change is not
    parsed again.
    """
    result: dict[str, CommandStats] = {}
    for key, value in info.items():
        if not key.startswith("cmdstat_"):
            continue
        if reuse is None:
            stats = _command_stat(value)
        else:
            found = reuse.get(key)
            if found is not None and found[0] == value:
                stats = found[1]
            else:
                stats = _command_stat(value)
                reuse[key] = (value, stats)
        if stats is not None:
            result[key[8:]] = stats
        elif skipped is not None:
            skipped.append(key)
    return result


def _command_stat(value: str) -> CommandStats | None:
    """One `cmdstat_` value, or None when a field is not a counter's value."""
    match = _PLAIN_CMDSTAT.fullmatch(value)
    if match is not None:  # digits only: never negative, finite unless absurdly long
        calls, usec, rejected, failed = map(float, match.groups())
        if math.isfinite(calls + usec + rejected + failed):
            return new_tuple(CommandStats, (calls, usec / 1e6, rejected, failed))
        return None
    fields = parse_fields(value)
    try:
        # + 0.0: a `-0` reads as 0, as redis-py reads it (and `Reuse` compares values with ==)
        calls = float(fields.get("calls", 0)) + 0.0
        usec = float(fields.get("usec", 0)) + 0.0
        rejected = float(fields.get("rejected_calls", 0)) + 0.0  # 6.2
        failed = float(fields.get("failed_calls", 0)) + 0.0  # 6.2
    except ValueError:
        return None
    # all finite and none negative (a NaN fails the comparison or makes the sum NaN)
    if (
        calls >= 0
        and min(usec, rejected, failed) >= 0
        and math.isfinite(calls + usec + rejected + failed)
    ):
        return CommandStats(calls, usec / 1e6, rejected, failed)
    return None


def fold_commands(
    stats: Mapping[str, CommandStats], kept: frozenset[str]
) -> dict[str, CommandStats]:
    """Stats of the kept commands, the others summed under `other`."""
    result = {cmd: s for cmd, s in stats.items() if cmd in kept}
    rest = [s for cmd, s in stats.items() if cmd not in kept]
    if rest:
        result[OTHER] = CommandStats(
            calls=sum([s.calls for s in rest]),
            seconds=sum([s.seconds for s in rest]),
            rejected=sum([s.rejected for s in rest]),
            failed=sum([s.failed for s in rest]),
        )
    return result


def _bound_index(usec: int) -> int:
    """j of the smallest power of four 4**j >= `usec` (0 for 0 and 1)."""
    return ((usec - 1).bit_length() + 1) >> 1 if usec > 1 else 0


def _folded_counts(
    histograms: Mapping[str, CommandLatency],
    kept: frozenset[str],
    reuse: dict[str, tuple[CommandLatency, int, list[int]]] | None = None,
) -> tuple[int, dict[str, tuple[int, list[int]]]]:
    """(number of bounds, {command or `other`: (calls, cumulative count per bound)}).

    Each command's counts are filled forward onto the powers of four (`_filled`); the commands
    not kept are added up, bound by bound, under `other`. `reuse` (`Reuse.counts`) holds each
    command's filled counts with the entry they came from: an entry that is the same object as
    last time (reused by `parse_latency_histogram`), on as many bounds, is not filled again.
    """
    top = max((b[-1][0] for h in histograms.values() if (b := h.buckets)), default=1)
    size = _bound_index(top) + 1
    grouped: dict[str, tuple[int, list[int]]] = {}
    for cmd, h in histograms.items():
        if reuse is None:
            counts = _filled(h, size)
        else:
            found = reuse.get(cmd)
            if found is not None and found[0] is h and found[1] == size:
                counts = found[2]
            else:
                counts = _filled(h, size)
                reuse[cmd] = (h, size, counts)
        key = cmd if cmd in kept else OTHER
        entry = grouped.get(key)
        if entry is None:
            grouped[key] = (h.calls, counts)  # shared with `reuse`: never changed in place
        else:
            grouped[key] = (entry[0] + h.calls, list(map(add, entry[1], counts)))
    return size, grouped


def _filled(h: CommandLatency, size: int) -> list[int]:
    """One command's count at or below each of `size` powers of four, in one pass: each of
    Redis's buckets adds its increment over the one before to the first power of four at or
    above its bound, and a running sum of those is the count filled forward (what
    `fold_histograms` documents)."""
    increments, previous = [0] * size, 0
    for bound, count in h.buckets:  # _bound_index(bound), inlined: the innermost loop
        increments[((bound - 1).bit_length() + 1) >> 1 if bound > 1 else 0] += count - previous
        previous = count
    return list(accumulate(increments))


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


#: Bucket bounds in seconds (4**j us) and their `le` label values, grown on demand (only
#: appended to, `_LES` first, under `_GROWING`: collections of two targets may grow them at once).
_SECONDS: list[float] = []
_LES: list[str] = []
_GROWING = threading.Lock()


def _bound_seconds(size: int) -> list[float]:
    if len(_SECONDS) < size:
        with _GROWING:
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
    reuse: Reuse | None = None,
) -> None:
    """Samples are built directly: `add_metric` costs ~3x as much per bucket, and this family
    has more samples than all the others together. `reuse` holds each command's filled counts
    and samples of the previous scrapes with what they were made from (`Reuse.counts`,
    `Reuse.buckets`): a command whose entry or counts did not change is not done again."""
    if not histograms:
        return
    size, folded = _folded_counts(histograms, kept, None if reuse is None else reuse.counts)
    _bound_seconds(size)
    buckets = None if reuse is None else reuse.buckets
    other_seconds = sum([s.seconds for cmd, s in stats.items() if cmd not in kept])
    extend = family.samples.extend
    for cmd, (calls, counts) in sorted(folded.items()):
        stat = stats.get(cmd)
        seconds = other_seconds if cmd == OTHER else (stat.seconds if stat else 0.0)
        if buckets is None:
            extend(_command_buckets(family.name, instance, cmd, calls, counts, seconds))
            continue
        made = (instance, calls, counts, seconds)
        found = buckets.get(cmd)
        if found is None or found[0] != made:
            found = buckets[cmd] = (
                made,
                _command_buckets(family.name, instance, cmd, calls, counts, seconds),
            )
        extend(found[1])


def _command_buckets(
    name: str, instance: str, cmd: str, calls: int, counts: list[int], seconds: float
) -> list[Sample]:
    """One command's buckets (on the shared bounds, then +Inf), count and sum."""
    new, bucket = new_tuple, f"{name}_bucket"
    samples = [
        new(
            Sample,
            (bucket, {LABEL: instance, "command": cmd, "le": le}, float(count), None, None, None),
        )
        for le, count in zip(_LES, counts, strict=False)
    ]
    labels = {LABEL: instance, "command": cmd}
    samples.append(
        new(
            Sample,
            (
                bucket,
                {LABEL: instance, "command": cmd, "le": "+Inf"},
                float(calls),
                None,
                None,
                None,
            ),
        )
    )
    samples.append(new(Sample, (f"{name}_count", labels, float(calls), None, None, None)))
    samples.append(new(Sample, (f"{name}_sum", labels, seconds, None, None, None)))
    return samples
