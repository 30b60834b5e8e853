"""Per-command statistics: `cmdstat_*` lines and the latency histogram, within a series budget,
and the duration histogram family built from them.

Commands beyond the budget are folded under `command="other"` so totals stay right while the
number of series stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collectors.redis.fields import LABEL
from collectors.redis.parsing import CommandLatency, parse_fields

OTHER = "other"


@dataclass(frozen=True)
class CommandStats:
    calls: float
    seconds: float
    rejected: float
    failed: float


def command_stats(
    info: Mapping[str, str], skipped: list[str] | None = None
) -> dict[str, CommandStats]:
    """`cmdstat_<command>` lines -> {command: stats}; subcommands look like `config|get`.

    A line with a value that is not a counter's (`calls=ABC`, `nan`, `-1`) is left out and
    named in `skipped`: one bad line costs that command's series, not the instance.
    """
    result: dict[str, CommandStats] = {}
    for key, value in info.items():
        if not key.startswith("cmdstat_"):
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
    top = max((b[-1][0] for h in histograms.values() if (b := h.buckets)), default=1)
    bounds = [1]
    while bounds[-1] < top:
        bounds.append(bounds[-1] * 4)

    def filled(h: CommandLatency) -> list[int]:
        counts, i, current = [], 0, 0
        for bound in bounds:
            while i < len(h.buckets) and h.buckets[i][0] <= bound:
                current = h.buckets[i][1]
                i += 1
            counts.append(current)
        return counts

    grouped: dict[str, tuple[int, list[int]]] = {}
    for cmd, h in histograms.items():
        key = cmd if cmd in kept else OTHER
        calls, counts = grouped.get(key, (0, [0] * len(bounds)))
        grouped[key] = (calls + h.calls, [a + b for a, b in zip(counts, filled(h), strict=True)])
    seconds = [b / 1e6 for b in bounds]
    return {
        cmd: (calls, list(zip(seconds, counts, strict=True)))
        for cmd, (calls, counts) in grouped.items()
    }


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
    name = family.name
    folded = fold_histograms(histograms, kept)
    other_seconds = sum(s.seconds for cmd, s in stats.items() if cmd not in kept)
    bucket, samples = f"{name}_bucket", family.samples
    les: list[str] = []
    for cmd, (calls, buckets) in sorted(folded.items()):
        if len(les) < len(buckets):
            les = [_go_float(bound) for bound, _ in buckets]
        labels = {LABEL: instance, "command": cmd}
        for le, (_, count) in zip(les, buckets, strict=False):
            samples.append(Sample(bucket, {**labels, "le": le}, float(count)))
        samples.append(Sample(bucket, {**labels, "le": "+Inf"}, float(calls)))
        samples.append(Sample(f"{name}_count", labels, float(calls)))
        stat = stats.get(cmd)
        seconds = other_seconds if cmd == OTHER else (stat.seconds if stat else 0.0)
        samples.append(Sample(f"{name}_sum", labels, seconds))
