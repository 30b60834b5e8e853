"""Every family the Redis collector serves (`SPECS`), and the mapping from one parsed INFO (and
latency histogram) to them. Pure: tested on captured dumps, no network."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collectors.base import ScrapeContext
from collectors.redis.commands import (
    OTHER,
    CommandStats,
    command_stats,
    fold_commands,
    fold_histograms,
)
from collectors.redis.fields import INFO_FIELDS, LABEL
from collectors.redis.parsing import CommandLatency, parse_fields
from collectors.specs import FamilySet, MetricSpec, counter, gauge, histogram

_COMMAND = (LABEL, "command")
_DB = (LABEL, "db")
_CMDSTAT = "INFO commandstats"

# fmt: off
CACHE_UP = gauge("cache_up", "1 if the Redis instance answered INFO.", [LABEL], source="the scrape's round trip")  # noqa: E501
HIT_RATE = gauge("cache_hit_rate", "Percent of keyspace lookups that hit, since the exporter's previous scrape of this instance (lifetime on the first scrape); 0 when there were no lookups.", [LABEL], source="INFO `keyspace_hits`, `keyspace_misses`, between two scrapes")  # noqa: E501
OPERATIONS = counter("cache_operations_total", "Cache operations by outcome: keyspace lookups (operation=lookup) that hit or missed, and commands that failed or were rejected (result=error, per command; Redis >= 6.2).", [LABEL, "operation", "result"], source="INFO `keyspace_*`; commandstats `failed_calls` + `rejected_calls`")  # noqa: E501
OPERATION_DURATION = histogram("cache_operation_duration_seconds", "Command execution time per command, from LATENCY HISTOGRAM (Redis >= 7); the sum is commandstats usec.", _COMMAND, unit="seconds", source="LATENCY HISTOGRAM (Redis >= 7); sum: commandstats `usec`")  # noqa: E501
CACHE_INFO = gauge("cache_info", "Redis server version, role, mode and eviction policy; always 1.", [LABEL, "version", "role", "mode", "maxmemory_policy"], source="INFO `redis_version`, `role` (slave: replica), `redis_mode`, `maxmemory_policy`")  # noqa: E501
COMMANDS = counter("redis_commands_total", "Calls per command (commandstats).", _COMMAND, source=f"{_CMDSTAT} `calls`; subcommands as `config|get`")  # noqa: E501
COMMAND_SECONDS = counter("redis_commands_duration_seconds_total", "Time spent executing each command (commandstats usec).", _COMMAND, unit="seconds", source=f"{_CMDSTAT} `usec`")  # noqa: E501
REJECTED = counter("redis_commands_rejected_calls_total", "Calls rejected before execution (unknown command, wrong arity, OOM, ACL...), all commands (commandstats; Redis >= 6.2).", [LABEL], source=f"{_CMDSTAT} `rejected_calls` (Redis 6.2)")  # noqa: E501
FAILED = counter("redis_commands_failed_calls_total", "Calls executed that returned an error (WRONGTYPE...), all commands (commandstats; Redis >= 6.2).", [LABEL], source=f"{_CMDSTAT} `failed_calls` (Redis 6.2)")  # noqa: E501
ERRORS = counter("redis_errors_total", "Error replies by error prefix (errorstats; Redis >= 6.2).", [LABEL, "error"], source="INFO errorstats `errorstat_<PREFIX>:count` (Redis 6.2)")  # noqa: E501
DB_KEYS = gauge("redis_db_keys", "Keys in each database.", _DB, source="INFO keyspace `db<N>:keys` (non-empty dbs only)")  # noqa: E501
DB_EXPIRING = gauge("redis_db_keys_expiring", "Keys with a TTL in each database.", _DB, source="INFO keyspace `db<N>:expires`")  # noqa: E501
DB_AVG_TTL = gauge("redis_db_avg_ttl_seconds", "Average TTL of the keys with one, estimated by Redis from sampled keys.", _DB, unit="seconds", source="INFO keyspace `db<N>:avg_ttl` (ms)")  # noqa: E501
REPLICA_LAG = gauge("redis_replica_lag_seconds", "On a master: seconds since each connected replica last acknowledged (by slot index).", [LABEL, "replica"], unit="seconds", source="INFO replication `slave<N>:...,lag=` (masters only)")  # noqa: E501
# fmt: on

SPECS: tuple[MetricSpec, ...] = (
    CACHE_UP,
    HIT_RATE,
    OPERATIONS,
    OPERATION_DURATION,
    CACHE_INFO,
    *(f.spec for f in INFO_FIELDS),
    COMMANDS,
    COMMAND_SECONDS,
    REJECTED,
    FAILED,
    ERRORS,
    DB_KEYS,
    DB_EXPIRING,
    DB_AVG_TTL,
    REPLICA_LAG,
)


@dataclass
class Lookups:
    """Keyspace hits and misses at a previous scrape, to compute the hit rate over an interval."""

    hits: float
    misses: float


def hit_rate_percent(current: Lookups, previous: Lookups | None) -> float:
    """Percent of keyspace lookups that hit since `previous` (lifetime when there is none or
    the counters went back, as after a restart or CONFIG RESETSTAT); 0 without lookups."""
    hits, misses = current.hits, current.misses
    if previous is not None and hits >= previous.hits and misses >= previous.misses:
        hits, misses = hits - previous.hits, misses - previous.misses
    total = hits + misses
    return 100.0 * hits / total if total > 0 else 0.0


def lookups(info: Mapping[str, str]) -> Lookups:
    return Lookups(
        float(info.get("keyspace_hits", 0) or 0), float(info.get("keyspace_misses", 0) or 0)
    )


def info_families(
    info: Mapping[str, str],
    instance: str,
    *,
    ctx: ScrapeContext,
    command_limit: int,
    histogram_command_limit: int | None = None,
    previous: Lookups | None = None,
    histograms: Mapping[str, CommandLatency] | None = None,
) -> list[Metric]:
    """Every family for one parsed INFO (and histogram), `instance` as the label value."""
    out = FamilySet(instance)
    out.add(CACHE_UP, 1.0)
    for row in INFO_FIELDS:
        raw = info.get(row.key)
        if raw is None:
            continue
        try:
            value = row.convert(raw)
        except ValueError:
            continue
        out.add(row.spec, value)

    current = lookups(info)
    out.add(HIT_RATE, hit_rate_percent(current, previous))
    role = info.get("role", "")
    out.add(
        CACHE_INFO,
        1.0,
        info.get("redis_version", ""),
        "replica" if role == "slave" else role,
        info.get("redis_mode", ""),
        info.get("maxmemory_policy", ""),
    )

    stats = command_stats(info)
    kept = ctx.keep_top({cmd: s.calls for cmd, s in stats.items()}, command_limit)
    folded = fold_commands(stats, kept)
    # failed_calls/rejected_calls came with total_error_replies in 6.2
    errors = "total_error_replies" in info
    out.add(OPERATIONS, current.hits, "lookup", "hit")
    out.add(OPERATIONS, current.misses, "lookup", "miss")
    _command_families(out, folded, errors=errors)
    _error_family(out, info, ctx, command_limit)
    _keyspace_families(out, info)
    _replica_family(out, info)
    if histograms is not None:
        limit = command_limit if histogram_command_limit is None else histogram_command_limit
        calls = {cmd: s.calls for cmd, s in stats.items() if cmd in kept}
        top = ctx.keep_top(calls, limit) if limit < len(kept) else kept
        _histogram_family(out.get(OPERATION_DURATION), histograms, stats, top, instance)
    return out.families()


def _command_families(out: FamilySet, folded: Mapping[str, CommandStats], *, errors: bool) -> None:
    """Calls and time per command; rejected and failed calls server-wide (per command they
    are in `cache_operations_total{result="error"}`: one series per command, not three)."""
    if errors:
        for cmd, s in sorted(folded.items()):
            out.add(OPERATIONS, s.rejected + s.failed, cmd, "error")
    out.get(COMMANDS)
    out.get(COMMAND_SECONDS)
    for cmd, s in sorted(folded.items()):
        out.add(COMMANDS, s.calls, cmd)
        out.add(COMMAND_SECONDS, s.seconds, cmd)
    if errors:
        out.add(REJECTED, sum(s.rejected for s in folded.values()))
        out.add(FAILED, sum(s.failed for s in folded.values()))


def _error_family(out: FamilySet, info: Mapping[str, str], ctx: ScrapeContext, limit: int) -> None:
    counts = {
        key[10:]: float(parse_fields(value).get("count", 0))
        for key, value in info.items()
        if key.startswith("errorstat_")  # 6.2
    }
    out.get(ERRORS)
    kept = ctx.keep_top(counts, limit)
    other = 0.0
    for error, count in sorted(counts.items()):
        if error in kept:
            out.add(ERRORS, count, error)
        else:
            other += count
    if len(kept) < len(counts):
        out.add(ERRORS, other, OTHER)


def _keyspace_families(out: FamilySet, info: Mapping[str, str]) -> None:
    for spec in (DB_KEYS, DB_EXPIRING, DB_AVG_TTL):
        out.get(spec)
    for key, value in info.items():
        if key.startswith("db") and key[2:].isdigit():
            fields = parse_fields(value)
            out.add(DB_KEYS, float(fields.get("keys", 0)), key)
            out.add(DB_EXPIRING, float(fields.get("expires", 0)), key)
            out.add(DB_AVG_TTL, float(fields.get("avg_ttl", 0)) / 1e3, key)


def _replica_family(out: FamilySet, info: Mapping[str, str]) -> None:
    """On a master, the lag each connected replica reports (`slave<N>:...,lag=S`)."""
    out.get(REPLICA_LAG)
    for key, value in info.items():
        if key.startswith("slave") and key[5:].isdigit():
            fields = parse_fields(value)
            if "lag" in fields:
                out.add(REPLICA_LAG, float(fields["lag"]), key[5:])


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (`1e-06`, `0.000256`), like prometheus_client."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _histogram_family(
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
