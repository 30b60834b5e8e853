"""Every family the Redis collector serves (`SPECS`), and the mapping from one parsed INFO (and
latency histogram) to them. Pure: tested on captured dumps, no network."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collectors.base import ScrapeContext
from collectors.own_lookups import OwnLookups
from collectors.redis.commands import (
    OTHER,
    CommandStats,
    command_stats,
    fold_commands,
    histogram_family,
)
from collectors.redis.fields import INFO_FIELDS, LABEL
from collectors.redis.interval import LookupInterval
from collectors.redis.parsing import CommandLatency, number, parse_fields
from collectors.redis.reuse import CommandSamples, DbSamples, Reuse
from collectors.redis.samples import Prototype, new_tuple
from collectors.specs import MetricSpec, counter, gauge, histogram

_COMMAND = (LABEL, "command")
_DB = (LABEL, "db")
_CMDSTAT = "INFO commandstats"

# fmt: off
CACHE_UP = gauge("cache_up", "1 if the Redis server answered INFO.", [LABEL], source="the scrape's round trip")  # noqa: E501
HIT_RATE = gauge("cache_hit_rate", "Percent of the keyspace lookups since the exporter's previous scrape of this server that hit, the exporter's own lookups (task-queue reads) left out; no sample on the first scrape, after a restart, or when there was no lookup but the exporter's own.", [LABEL], source="INFO `keyspace_hits`, `keyspace_misses` between two scrapes, minus the exporter's own lookups")  # noqa: E501
OPERATIONS = counter("cache_operations_total", "Cache operations by type and result: keyspace lookups (type=lookup) that hit or missed, the exporter's own left out, and calls of each command that failed or were rejected (type=<command>, result=error; Redis >= 6.2).", [LABEL, "type", "result"], source="INFO `keyspace_*` minus the exporter's own lookups; commandstats `failed_calls` + `rejected_calls`")  # noqa: E501
OWN_HITS = counter("redis_exporter_own_keyspace_hits_total", "Keyspace hits this exporter process caused on the server itself (task-queue reads of keys that exist), left out of cache_hit_rate and cache_operations_total.", [LABEL], source="the exporter's ledger of its own reads (collectors/own_lookups.py)")  # noqa: E501
OWN_MISSES = counter("redis_exporter_own_keyspace_misses_total", "Keyspace misses this exporter process caused on the server itself (task-queue reads of keys that do not exist, such as empty queues), left out of cache_hit_rate and cache_operations_total.", [LABEL], source="the exporter's ledger of its own reads (collectors/own_lookups.py)")  # noqa: E501
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
FIELDS_SKIPPED = gauge("redis_exporter_info_fields_skipped", "INFO fields (and LATENCY HISTOGRAM entries) left out of this scrape because their value was not a number the metric may carry (not a number, NaN, infinite, or a negative counter).", [LABEL], source="this exporter's parse of INFO")  # noqa: E501
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
    OWN_HITS,
    OWN_MISSES,
    FIELDS_SKIPPED,
)
NO_OWN_LOOKUPS = OwnLookups()
#: Field names shown in the landing-page note about skipped fields: at most this many, this long.
_NOTE_NAMES, _NOTE_NAME_LENGTH = 3, 40


#: An empty family per spec name (the Redis specs' names are unique), copied by `_Families`.
_PROTOTYPES: dict[str, Prototype] = {}


def _prototype(spec: MetricSpec) -> Prototype:
    found = _PROTOTYPES.get(spec.name)
    if found is None:
        found = _PROTOTYPES[spec.name] = Prototype(spec)
    return found


class _Families:
    """`FamilySet`'s job for the hot path of one Redis collection: families in first-use order,
    each copied from a prototype made once per spec, and samples built as prometheus_client's
    `add_metric` would build them (a counter's sample name is its spec's, `_total` included)."""

    def __init__(self, cache: str) -> None:
        self.cache = cache
        self.by_name: dict[str, Metric] = {}

    def get(self, spec: MetricSpec) -> Metric:
        family = self.by_name.get(spec.name)
        if family is None:
            # `spec.family()` hashes the whole spec to find its prototype; a name is enough here
            family = self.by_name[spec.name] = _prototype(spec).family([])
        return family

    def add(self, spec: MetricSpec, value: float, *label_values: str) -> None:
        if label_values or len(spec.labels) != 1:
            labels = dict(zip(spec.labels, (self.cache, *label_values), strict=True))
        else:  # the `cache` label alone, as most of these families have
            labels = {spec.labels[0]: self.cache}
        sample = new_tuple(Sample, (spec.name, labels, float(value), None, None, None))
        self.get(spec).samples.append(sample)


def info_families(
    info: Mapping[str, str],
    cache: str,
    *,
    ctx: ScrapeContext,
    command_limit: int,
    histogram_command_limit: int | None = None,
    interval: LookupInterval | None = None,
    own: OwnLookups = NO_OWN_LOOKUPS,
    histograms: Mapping[str, CommandLatency] | None = None,
    skipped: Sequence[str] = (),
    reuse: Reuse | None = None,
) -> list[Metric]:
    """Every family for one parsed INFO (and histogram), `cache` as the label value.

    `interval` holds the previous scrape of this target (the hit rate is over the interval
    since it) and `own` the exporter's own lookups on the server so far, which are taken out
    of the hit rate and `cache_operations_total`. A field whose value a metric may not carry
    is left out and counted (with those already in `skipped`, from parsing the histogram); the
    rest of the target is still served. `reuse` holds what the previous scrapes of this target
    built from lines that came back unchanged (`collectors.redis.reuse`); without it everything
    is built afresh, to the same families.
    """
    if reuse is not None:
        reuse.trim()
    out = _Families(cache)
    bad = list(skipped)
    out.add(CACHE_UP, 1.0)
    get, isfinite, by_name = info.get, math.isfinite, out.by_name
    new_family, new = Metric.__new__, new_tuple
    # one family per field, first used here (`_FIELD_PLAN`'s names are unique): made inline
    for key, name, cls, state, convert, is_counter in _FIELD_PLAN:
        raw = get(key)
        if raw is None:
            continue
        try:
            value = convert(raw)
        except ValueError:
            bad.append(key)
            continue
        if not isfinite(value) or (is_counter and value < 0):
            bad.append(key)
        else:
            family = by_name[name] = new_family(cls)
            family.__dict__.update(state)
            family.samples = [new(Sample, (name, {LABEL: cache}, value, None, None, None))]

    counted = (interval or LookupInterval()).account(info, own, bad)
    if counted is not None and counted.rate is not None:
        out.add(HIT_RATE, counted.rate)
    role = get("role", "")
    out.add(
        CACHE_INFO,
        1.0,
        get("redis_version", ""),
        "replica" if role == "slave" else role,
        get("redis_mode", ""),
        get("maxmemory_policy", ""),
    )

    lines = _lines(info)
    stats = command_stats(lines.commands, bad, None if reuse is None else reuse.cmdstats)
    kept = ctx.keep_top({cmd: s.calls for cmd, s in stats.items()}, command_limit)
    folded = fold_commands(stats, kept)
    # failed_calls/rejected_calls came with total_error_replies in 6.2
    errors = "total_error_replies" in info
    if counted is not None:
        out.add(OPERATIONS, counted.app.hits, "lookup", "hit")
        out.add(OPERATIONS, counted.app.misses, "lookup", "miss")
        out.add(OWN_HITS, counted.own.hits)
        out.add(OWN_MISSES, counted.own.misses)
    _command_families(
        out, cache, folded, errors=errors, reuse=None if reuse is None else reuse.commands
    )
    _error_family(out, lines.errors, ctx, command_limit, bad)
    _keyspace_families(out, lines.dbs, bad, None if reuse is None else reuse.dbs)
    _replica_family(out, lines.replicas, bad)
    if histograms is not None:
        limit = command_limit if histogram_command_limit is None else histogram_command_limit
        calls = {cmd: s.calls for cmd, s in stats.items() if cmd in kept}
        top = ctx.keep_top(calls, limit) if limit < len(kept) else kept
        family = out.get(OPERATION_DURATION)
        histogram_family(family, histograms, stats, top, cache, reuse)
    fields = list(dict.fromkeys(bad))  # a field feeding two metrics counts once
    out.add(FIELDS_SKIPPED, len(fields))
    if fields:
        ctx.note(f"INFO fields skipped, not valid numbers: {_names(fields)}")
    return list(out.by_name.values())


def _field_plan() -> tuple[tuple[str, str, type[Metric], dict[str, Any], Any, bool], ...]:
    """(field, family name, family class and state to copy, conversion, counter?) per table
    row, in table order; the names are unique and none is CACHE_UP's (made before them)."""
    names = [row.spec.name for row in INFO_FIELDS]
    if len(set(names)) != len(names) or CACHE_UP.name in names:
        raise ValueError("INFO_FIELDS names a family twice")
    plan = []
    for row in INFO_FIELDS:
        prototype = _prototype(row.spec)
        plan.append(
            (row.key, row.spec.name, prototype.cls, prototype.state, row.convert, row.is_counter)
        )
    return tuple(plan)


_FIELD_PLAN = _field_plan()


def _names(fields: Sequence[str]) -> str:
    """A few field names for the landing page: printable, short, never a value."""
    shown = [
        "".join(c if c.isprintable() else "?" for c in name[:_NOTE_NAME_LENGTH])
        for name in fields[:_NOTE_NAMES]
    ]
    more = len(fields) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def _command_families(
    out: _Families,
    cache: str,
    folded: Mapping[str, CommandStats],
    *,
    errors: bool,
    reuse: dict[str, tuple[Any, CommandSamples]] | None = None,
) -> None:
    """Calls and time per command; rejected and failed calls server-wide (per command they
    are in `cache_operations_total{result="error"}`: one series per command, not three).

    Samples are built directly: these are most of a scrape's samples but the histogram's.
    `reuse` (`Reuse.commands`) holds each command's samples of the previous scrapes with the
    stats they were made from: a command whose stats did not change is not built again."""
    made: list[CommandSamples] = []
    for cmd, s in sorted(folded.items()):
        if reuse is None:
            made.append(_command_samples(cache, cmd, s, errors))
            continue
        inputs = (cache, s, errors)
        found = reuse.get(cmd)
        if found is None or found[0] != inputs:
            found = reuse[cmd] = (inputs, _command_samples(cache, cmd, s, errors))
        made.append(found[1])
    if errors:
        out.get(OPERATIONS).samples.extend([error for error, _, _ in made if error is not None])
    append_calls = out.get(COMMANDS).samples.append
    append_seconds = out.get(COMMAND_SECONDS).samples.append
    for _, calls, seconds in made:
        append_calls(calls)
        append_seconds(seconds)
    if errors:
        out.add(REJECTED, sum([s.rejected for s in folded.values()]))
        out.add(FAILED, sum([s.failed for s in folded.values()]))


def _command_samples(cache: str, cmd: str, s: CommandStats, errors: bool) -> CommandSamples:
    """One command's error (Redis >= 6.2), calls and seconds samples."""
    new = new_tuple
    error = None
    if errors:
        labels = {LABEL: cache, "type": cmd, "result": "error"}
        error = new(Sample, (OPERATIONS.name, labels, s.rejected + s.failed, None, None, None))
    calls = new(Sample, (COMMANDS.name, {LABEL: cache, "command": cmd}, s.calls, None, None, None))
    seconds = new(
        Sample, (COMMAND_SECONDS.name, {LABEL: cache, "command": cmd}, s.seconds, None, None, None)
    )
    return error, calls, seconds


@dataclass
class _Lines:
    """The INFO lines with one entry per command, error prefix, db or replica."""

    commands: dict[str, str] = field(default_factory=dict)  # cmdstat_<command>
    errors: list[tuple[str, str]] = field(default_factory=list)  # errorstat_<PREFIX> (6.2)
    dbs: list[tuple[str, str]] = field(default_factory=list)  # db<N>
    replicas: list[tuple[str, str]] = field(default_factory=list)  # slave<N>


#: INFO field name -> the kind of line it is (`_kind`): the same names come every scrape.
_KINDS: dict[str, int] = {}
_OTHER_LINE, _CMDSTAT_LINE, _ERROR_LINE, _DB_LINE, _REPLICA_LINE = range(5)
#: Names kept in `_KINDS` before it is emptied (a server's INFO has a few hundred).
_KINDS_LIMIT = 4096


def _kind(key: str) -> int:
    first = key[:1]
    if first == "c" and key.startswith("cmdstat_"):
        return _CMDSTAT_LINE
    if first == "e" and key.startswith("errorstat_"):
        return _ERROR_LINE
    if first == "d" and key[2:].isdigit() and key.startswith("db"):
        return _DB_LINE
    if first == "s" and key[5:].isdigit() and key.startswith("slave"):
        return _REPLICA_LINE
    return _OTHER_LINE


def _lines(info: Mapping[str, str]) -> _Lines:
    """One pass over INFO instead of one per kind of line (INFO ALL has ~250 fields), each
    name's kind looked up rather than worked out again."""
    lines = _Lines()
    kinds = _KINDS
    if len(kinds) > _KINDS_LIMIT:
        kinds.clear()
    get, commands = kinds.get, lines.commands
    for key, value in info.items():
        kind = get(key)
        if kind is None:
            kind = kinds[key] = _kind(key)
        if kind:
            if kind == _CMDSTAT_LINE:
                commands[key] = value
            elif kind == _ERROR_LINE:
                lines.errors.append((key, value))
            elif kind == _DB_LINE:
                lines.dbs.append((key, value))
            else:
                lines.replicas.append((key, value))
    return lines


def _error_family(
    out: _Families, lines: list[tuple[str, str]], ctx: ScrapeContext, limit: int, bad: list[str]
) -> None:
    counts: dict[str, float] = {}
    for key, value in lines:
        count = number(parse_fields(value).get("count", "0"), counter=True)
        if count is None:
            bad.append(key)
        else:
            counts[key[10:]] = count
    name, cache, append = ERRORS.name, out.cache, out.get(ERRORS).samples.append
    kept = ctx.keep_top(counts, limit)
    other = 0.0
    for error, count in sorted(counts.items()):
        if error in kept:
            append(
                new_tuple(Sample, (name, {LABEL: cache, "error": error}, count, None, None, None))
            )
        else:
            other += count
    if len(kept) < len(counts):
        append(new_tuple(Sample, (name, {LABEL: cache, "error": OTHER}, other, None, None, None)))


def _keyspace_families(
    out: _Families,
    lines: list[tuple[str, str]],
    bad: list[str],
    reuse: dict[str, tuple[tuple[str, str], DbSamples | None]] | None = None,
) -> None:
    """Keys, keys with a TTL and their average TTL per db. `reuse` (`Reuse.dbs`) holds each
    db's samples of the previous scrapes with the line they were made from."""
    cache = out.cache
    add_keys, add_expiring, add_ttl = (
        out.get(spec).samples.append for spec in (DB_KEYS, DB_EXPIRING, DB_AVG_TTL)
    )
    for key, value in lines:
        if reuse is None:
            made = _db_samples(cache, key, value)
        else:
            inputs = (cache, value)
            found = reuse.get(key)
            if found is not None and found[0] == inputs:
                made = found[1]
            else:
                made = _db_samples(cache, key, value)
                reuse[key] = (inputs, made)
        if made is None:
            bad.append(key)
            continue
        add_keys(made[0])
        add_expiring(made[1])
        add_ttl(made[2])


def _db_samples(cache: str, key: str, value: str) -> DbSamples | None:
    """One `db<N>` line's samples, or None when a value is not a number."""
    get = parse_fields(value).get
    keys = number(get("keys", "0"), counter=False)
    expires = number(get("expires", "0"), counter=False)
    avg_ttl = number(get("avg_ttl", "0"), counter=False)
    if keys is None or expires is None or avg_ttl is None:
        return None
    new = new_tuple
    return (
        new(Sample, (DB_KEYS.name, {LABEL: cache, "db": key}, keys, None, None, None)),
        new(Sample, (DB_EXPIRING.name, {LABEL: cache, "db": key}, expires, None, None, None)),
        new(Sample, (DB_AVG_TTL.name, {LABEL: cache, "db": key}, avg_ttl / 1e3, None, None, None)),
    )


def _replica_family(out: _Families, lines: list[tuple[str, str]], bad: list[str]) -> None:
    """On a master, the lag each connected replica reports (`slave<N>:...,lag=S`)."""
    cache, append = out.cache, out.get(REPLICA_LAG).samples.append
    for key, value in lines:
        fields = parse_fields(value)
        if "lag" not in fields:
            continue
        lag = number(fields["lag"], counter=False)
        if lag is None:
            bad.append(key)
        else:
            append(
                new_tuple(
                    Sample,
                    (REPLICA_LAG.name, {LABEL: cache, "replica": key[5:]}, lag, None, None, None),
                )
            )
