"""Redis, through `INFO ALL` (and `LATENCY HISTOGRAM` on Redis >= 7) asked at scrape time.

Each scrape costs one round trip on one long-lived connection per instance: both commands are
sent together and both replies read back, each read capped by the scrape deadline. The raw
`INFO` text goes through `parse_info`, a lean pure parser (about 4x cheaper than redis-py's
typed `info()` parse, which converts ~250 values nobody reads); only the fields in
`INFO_FIELDS` and the per-command, per-error and per-db lines are converted.

In embedded mode the application hands in its `redis.Redis` client (`from_client`): the
collector opens its own connection with that client's settings (address, auth, TLS, db), so it
never takes a connection from the application's pool nor changes the timeouts of one.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.connection
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample
from redis.backoff import NoBackoff
from redis.connection import SSLConnection
from redis.exceptions import AuthorizationError
from redis.retry import Retry

from collectors.base import ScrapeContext, SourceCollector, classify_error, up_family
from collectors.checks import check_existing_file, check_limit, check_positive
from collectors.secret import Secret, url_password

LABEL = "instance"
_parse_url: Any = redis.connection.parse_url  # untyped in redis-py
OTHER = "other"
_SCHEMES = ("redis", "rediss", "unix")

# --------------------------------------------------------------------------------------------
# Configuration


def check_redis_url(value: str) -> str:
    """A redis://, rediss:// or unix:// URL; the message never repeats the URL (passwords)."""
    problem = "not a valid Redis URL (expected redis://HOST:PORT/DB, rediss://... or unix://PATH)"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        if parts.scheme not in _SCHEMES:
            raise ValueError(problem)
        if parts.scheme == "unix" and not parts.path:
            raise ValueError(problem)
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError(problem)
        _parse_url(value)
    except ValueError:
        raise ValueError(problem) from None
    return value


def check_db(value: int) -> int:
    if value < 0:
        raise ValueError(f"must be a database number >= 0, got {value}")
    return value


@dataclass(frozen=True)
class Options:
    """`collectors.redis:` settings, and what an embedded `from_client` collector uses."""

    #: Pipeline `LATENCY HISTOGRAM` with `INFO ALL` (Redis >= 7) for
    #: `cache_operation_duration_seconds`.
    latency_histogram: bool = True
    #: Per-command series are kept for this many commands (most calls first); the rest are
    #: summed under `command="other"` and counted in `afirgen_exporter_series_dropped`.
    command_limit: int = field(default=40, metadata={"check": check_limit})
    #: The duration histogram has ~10 series per command: it keeps fewer commands (most calls
    #: first), the others summed under `command="other"`.
    histogram_command_limit: int = field(default=10, metadata={"check": check_limit})
    #: Caps on one TCP/TLS connect and on one reply, both also capped by the scrape deadline.
    connect_timeout_seconds: float = field(default=3.0, metadata={"check": check_positive})
    read_timeout_seconds: float = field(default=5.0, metadata={"check": check_positive})


@dataclass(frozen=True)
class Target:
    """One entry of `redis:`. Unset tuning keys fall back to `collectors.redis:`."""

    name: str
    url: str = field(metadata={"check": check_redis_url})
    username: str | None = None
    password: Secret | None = None
    password_file: str | None = field(default=None, metadata={"secret_file_for": "password"})
    #: Database to SELECT (overrides the URL's); INFO is server-wide, so this rarely matters.
    db: int | None = field(default=None, metadata={"check": check_db})
    # TLS (rediss:// only)
    ca_file: str | None = field(default=None, metadata={"check": check_existing_file})
    cert_file: str | None = field(default=None, metadata={"check": check_existing_file})
    key_file: str | None = field(default=None, metadata={"check": check_existing_file})
    server_name: str | None = None
    verify: bool = True
    connect_timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    read_timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    #: This instance's own time limit inside the scrape deadline (applied by the engine).
    timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    latency_histogram: bool | None = None
    command_limit: int | None = field(default=None, metadata={"check": check_limit})
    histogram_command_limit: int | None = field(default=None, metadata={"check": check_limit})

    def __post_init__(self) -> None:
        tls_keys = [
            key
            for key in ("ca_file", "cert_file", "key_file", "server_name")
            if getattr(self, key) is not None
        ]
        if not self.verify:
            tls_keys.append("verify")
        if tls_keys and urlsplit(self.url).scheme != "rediss":
            raise ValueError(f"{', '.join(tls_keys)} apply only to rediss:// URLs")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file must be set together")

    def effective_options(self, defaults: Options) -> Options:
        """`defaults` with this target's own settings applied over them."""
        overrides = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(Options)
            if getattr(self, f.name) is not None
        }
        return dataclasses.replace(defaults, **overrides)


class _NamedSSLConnection(SSLConnection):
    """redis-py's TLS connection, checking the certificate against `server_name` (SNI too)."""

    def __init__(self, *, server_name: str | None = None, **kwargs: Any) -> None:
        self.server_name = server_name
        super().__init__(**kwargs)

    def _wrap_socket_with_ssl(self, sock: Any) -> Any:
        wrap: Any = super()._wrap_socket_with_ssl
        if not self.server_name:
            return wrap(sock)
        host, self.host = self.host, self.server_name  # redis-py names the peer by self.host
        try:
            return wrap(sock)
        finally:
            self.host = host


def connection_settings(target: Target, options: Options) -> tuple[type[Any], dict[str, Any]]:
    """The redis-py connection class and keyword arguments for `target` (no I/O)."""
    kwargs: dict[str, Any] = dict(_parse_url(target.url))
    connection_class: type[Any] = kwargs.pop("connection_class", redis.Connection)
    if target.username is not None:
        kwargs["username"] = target.username
    if target.password is not None:
        kwargs["password"] = target.password.reveal()
    if target.db is not None:
        kwargs["db"] = target.db
    if issubclass(connection_class, SSLConnection):
        connection_class = _NamedSSLConnection
        kwargs.update(
            ssl_ca_certs=target.ca_file,
            ssl_certfile=target.cert_file,
            ssl_keyfile=target.key_file,
            ssl_cert_reqs="required" if target.verify else "none",
            ssl_check_hostname=target.verify,
            server_name=target.server_name,
        )
    kwargs.update(
        socket_connect_timeout=options.connect_timeout_seconds,
        socket_timeout=options.read_timeout_seconds,
        client_name="afirgen-exporter",
    )
    return connection_class, kwargs


# --------------------------------------------------------------------------------------------
# Parsing: pure functions on the text of INFO and the reply of LATENCY HISTOGRAM


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


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse_latency_histogram(reply: Any) -> dict[str, CommandLatency]:
    """`LATENCY HISTOGRAM` reply -> {command: CommandLatency} (Redis 7+)."""
    result: dict[str, CommandLatency] = {}
    for name, detail in _pairs(reply):
        fields = {_text(k): v for k, v in _pairs(detail)}
        buckets = tuple(
            sorted((int(bound), int(count)) for bound, count in _pairs(fields["histogram_usec"]))
        )
        result[_text(name).lower()] = CommandLatency(int(fields["calls"]), buckets)
    return result


# --------------------------------------------------------------------------------------------
# The field -> metric table


def _number(value: str) -> float:
    return float(value)


def _micro(value: str) -> float:
    return float(value) / 1e6


def _milli(value: str) -> float:
    return float(value) / 1e3


def _is(expected: str) -> Callable[[str], float]:
    def convert(value: str) -> float:
        return 1.0 if value == expected else 0.0

    return convert


@dataclass(frozen=True)
class InfoField:
    """How one INFO field becomes one sample (label `instance`)."""

    metric: str
    kind: str  # "gauge" or "counter" (prometheus_client adds `_total` to counters)
    help: str
    convert: Callable[[str], float] = _number


GAUGE, COUNTER = "gauge", "counter"

#: INFO field -> metric, in base units. Comments: the Redis version that introduced the field.
#: A field the server does not report is simply left out of that scrape.
INFO_FIELDS: tuple[tuple[str, InfoField], ...] = (
    # the contract families (DESIGN.md)
    ("used_memory", InfoField("cache_memory_usage_bytes", GAUGE, "Memory allocated by Redis (INFO used_memory).")),  # 1.0  # noqa: E501
    ("evicted_keys", InfoField("cache_evictions", COUNTER, "Keys evicted because of the maxmemory limit (INFO evicted_keys).")),  # 1.0  # noqa: E501
    # server
    ("uptime_in_seconds", InfoField("redis_uptime_seconds", GAUGE, "Seconds since the Redis server started.")),  # 1.0  # noqa: E501
    # clients
    ("connected_clients", InfoField("redis_connected_clients", GAUGE, "Client connections open (replicas excluded).")),  # 1.0  # noqa: E501
    ("blocked_clients", InfoField("redis_blocked_clients", GAUGE, "Clients waiting in a blocking call (BLPOP, XREAD, WAIT...).")),  # 1.0  # noqa: E501
    ("maxclients", InfoField("redis_max_clients", GAUGE, "The maxclients setting.")),  # 6.2  # noqa: E501
    # memory
    ("used_memory_rss", InfoField("redis_memory_used_rss_bytes", GAUGE, "Resident memory of the Redis process, as the OS sees it.")),  # 1.0  # noqa: E501
    ("used_memory_peak", InfoField("redis_memory_used_peak_bytes", GAUGE, "Peak of used_memory since start.")),  # 2.4  # noqa: E501
    ("maxmemory", InfoField("redis_memory_max_bytes", GAUGE, "The maxmemory setting (0: no limit).")),  # 3.2  # noqa: E501
    ("mem_fragmentation_ratio", InfoField("redis_memory_fragmentation_ratio", GAUGE, "used_memory_rss / used_memory.")),  # 1.0  # noqa: E501
    # stats
    ("keyspace_hits", InfoField("redis_keyspace_hits", COUNTER, "Key lookups that found the key.")),  # 2.0  # noqa: E501
    ("keyspace_misses", InfoField("redis_keyspace_misses", COUNTER, "Key lookups that did not find the key.")),  # 2.0  # noqa: E501
    ("expired_keys", InfoField("redis_expired_keys", COUNTER, "Keys removed because their TTL passed.")),  # 2.0  # noqa: E501
    ("evicted_keys", InfoField("redis_evicted_keys", COUNTER, "Keys evicted because of the maxmemory limit.")),  # 1.0  # noqa: E501
    ("total_commands_processed", InfoField("redis_commands_processed", COUNTER, "Commands processed by the server.")),  # 1.0  # noqa: E501
    ("total_connections_received", InfoField("redis_connections_received", COUNTER, "Connections accepted by the server.")),  # 1.0  # noqa: E501
    ("rejected_connections", InfoField("redis_rejected_connections", COUNTER, "Connections refused because of the maxclients limit.")),  # 2.6  # noqa: E501
    ("total_error_replies", InfoField("redis_error_replies", COUNTER, "Error replies sent (rejected and failed commands).")),  # 6.2  # noqa: E501
    ("total_net_input_bytes", InfoField("redis_net_input_bytes", COUNTER, "Bytes read from the network.")),  # 2.8  # noqa: E501
    ("total_net_output_bytes", InfoField("redis_net_output_bytes", COUNTER, "Bytes written to the network.")),  # 2.8  # noqa: E501
    ("latest_fork_usec", InfoField("redis_latest_fork_seconds", GAUGE, "Duration of the latest fork (BGSAVE, AOF rewrite).", _micro)),  # 2.6  # noqa: E501
    # persistence
    ("rdb_changes_since_last_save", InfoField("redis_rdb_changes_since_last_save", GAUGE, "Writes since the last RDB save.")),  # 2.6  # noqa: E501
    ("rdb_last_bgsave_status", InfoField("redis_rdb_last_bgsave_ok", GAUGE, "1 if the last RDB save succeeded.", _is("ok"))),  # 2.6  # noqa: E501
    ("rdb_last_save_time", InfoField("redis_rdb_last_save_timestamp_seconds", GAUGE, "When the last RDB save succeeded (Unix time).")),  # 2.6  # noqa: E501
    # replication
    ("connected_slaves", InfoField("redis_connected_replicas", GAUGE, "Replicas connected to this master.")),  # 1.0  # noqa: E501
    ("master_link_status", InfoField("redis_master_link_up", GAUGE, "On a replica: 1 if the link to its master is up.", _is("up"))),  # 1.0  # noqa: E501
    ("master_last_io_seconds_ago", InfoField("redis_master_last_io_seconds", GAUGE, "On a replica: seconds since the last interaction with its master.")),  # 1.0  # noqa: E501
    ("master_repl_offset", InfoField("redis_replication_offset_bytes", GAUGE, "Replication offset of this server.")),  # 2.8  # noqa: E501
    # cpu
    ("used_cpu_sys", InfoField("redis_cpu_sys_seconds", COUNTER, "System CPU time used by the Redis server.")),  # 1.0  # noqa: E501
    ("used_cpu_user", InfoField("redis_cpu_user_seconds", COUNTER, "User CPU time used by the Redis server.")),  # 1.0  # noqa: E501
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# INFO (+ histogram) -> families


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


@dataclass(frozen=True)
class CommandStats:
    calls: float
    seconds: float
    rejected: float
    failed: float


def command_stats(info: Mapping[str, str]) -> dict[str, CommandStats]:
    """`cmdstat_<command>` lines -> {command: stats}; subcommands look like `config|get`."""
    result: dict[str, CommandStats] = {}
    for key, value in info.items():
        if not key.startswith("cmdstat_"):
            continue
        fields = parse_fields(value)
        result[key[8:]] = CommandStats(
            calls=float(fields.get("calls", 0)),
            seconds=float(fields.get("usec", 0)) / 1e6,
            rejected=float(fields.get("rejected_calls", 0)),  # 6.2
            failed=float(fields.get("failed_calls", 0)),  # 6.2
        )
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


def _family(name: str, kind: str, help_text: str) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == COUNTER:
        return CounterMetricFamily(name, help_text, labels=[LABEL])
    return GaugeMetricFamily(name, help_text, labels=[LABEL])


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
    families: list[Metric] = [
        up_family("cache_up", "1 if the Redis instance answered INFO.", [LABEL], [instance], True)
    ]
    by_name: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
    for key, spec in INFO_FIELDS:
        raw = info.get(key)
        if raw is None:
            continue
        try:
            value = spec.convert(raw)
        except ValueError:
            continue
        family = by_name.get(spec.metric)
        if family is None:
            family = by_name[spec.metric] = _family(spec.metric, spec.kind, spec.help)
        family.add_metric([instance], value)
    families.extend(by_name.values())

    lookups = Lookups(
        float(info.get("keyspace_hits", 0) or 0), float(info.get("keyspace_misses", 0) or 0)
    )
    hit_rate = GaugeMetricFamily(
        "cache_hit_rate",
        "Percent of keyspace lookups that hit, since the exporter's previous scrape of "
        "this instance (lifetime on the first scrape); 0 when there were no lookups.",
        labels=[LABEL],
    )
    hit_rate.add_metric([instance], hit_rate_percent(lookups, previous))
    families.append(hit_rate)
    families.append(_info_family(info, instance))

    stats = command_stats(info)
    kept = ctx.keep_top({cmd: s.calls for cmd, s in stats.items()}, command_limit)
    folded = fold_commands(stats, kept)
    # failed_calls/rejected_calls came with total_error_replies in 6.2
    errors = "total_error_replies" in info
    families.extend(_operation_families(lookups, folded, instance, errors=errors))
    families.extend(_command_families(folded, instance, errors=errors))
    families.extend(_error_families(info, instance, ctx, command_limit))
    families.extend(_keyspace_families(info, instance))
    families.extend(_replica_families(info, instance))
    if histograms is not None:
        limit = command_limit if histogram_command_limit is None else histogram_command_limit
        calls = {cmd: s.calls for cmd, s in stats.items() if cmd in kept}
        top = ctx.keep_top(calls, limit) if limit < len(kept) else kept
        families.append(_histogram_family(histograms, stats, top, instance))
    return families


def _info_family(info: Mapping[str, str], instance: str) -> Metric:
    role = info.get("role", "")
    family = GaugeMetricFamily(
        "cache_info",
        "Redis server version, role, mode and eviction policy; always 1.",
        labels=[LABEL, "version", "role", "mode", "maxmemory_policy"],
    )
    family.add_metric(
        [
            instance,
            info.get("redis_version", ""),
            "replica" if role == "slave" else role,
            info.get("redis_mode", ""),
            info.get("maxmemory_policy", ""),
        ],
        1.0,
    )
    return family


def _operation_families(
    lookups: Lookups, folded: Mapping[str, CommandStats], instance: str, *, errors: bool
) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "cache_operations",
        "Cache operations by outcome: keyspace lookups (operation=lookup) that hit or missed, "
        "and commands that failed or were rejected (result=error, per command; Redis >= 6.2).",
        labels=[LABEL, "operation", "result"],
    )
    family.add_metric([instance, "lookup", "hit"], lookups.hits)
    family.add_metric([instance, "lookup", "miss"], lookups.misses)
    if errors:
        for cmd, s in sorted(folded.items()):
            family.add_metric([instance, cmd, "error"], s.rejected + s.failed)
    yield family


def _command_families(
    folded: Mapping[str, CommandStats], instance: str, *, errors: bool
) -> Iterator[Metric]:
    """Calls and time per command; rejected and failed calls server-wide (per command they
    are in `cache_operations_total{result="error"}`: one series per command, not three)."""
    labels = [LABEL, "command"]
    calls = CounterMetricFamily(
        "redis_commands", "Calls per command (commandstats).", labels=labels
    )
    seconds = CounterMetricFamily(
        "redis_commands_duration_seconds",
        "Time spent executing each command (commandstats usec).",
        labels=labels,
    )
    for cmd, s in sorted(folded.items()):
        calls.add_metric([instance, cmd], s.calls)
        seconds.add_metric([instance, cmd], s.seconds)
    yield from (calls, seconds)
    if not errors:
        return
    rejected = CounterMetricFamily(
        "redis_commands_rejected_calls",
        "Calls rejected before execution (unknown command, wrong arity, OOM, ACL...), all "
        "commands (commandstats; Redis >= 6.2).",
        labels=[LABEL],
    )
    rejected.add_metric([instance], sum(s.rejected for s in folded.values()))
    failed = CounterMetricFamily(
        "redis_commands_failed_calls",
        "Calls executed that returned an error (WRONGTYPE...), all commands (commandstats; "
        "Redis >= 6.2).",
        labels=[LABEL],
    )
    failed.add_metric([instance], sum(s.failed for s in folded.values()))
    yield from (rejected, failed)


def _error_families(
    info: Mapping[str, str], instance: str, ctx: ScrapeContext, limit: int
) -> Iterator[Metric]:
    counts = {
        key[10:]: float(parse_fields(value).get("count", 0))
        for key, value in info.items()
        if key.startswith("errorstat_")  # 6.2
    }
    family = CounterMetricFamily(
        "redis_errors",
        "Error replies by error prefix (errorstats; Redis >= 6.2).",
        labels=[LABEL, "error"],
    )
    kept = ctx.keep_top(counts, limit)
    other = 0.0
    for error, count in sorted(counts.items()):
        if error in kept:
            family.add_metric([instance, error], count)
        else:
            other += count
    if len(kept) < len(counts):
        family.add_metric([instance, OTHER], other)
    yield family


def _keyspace_families(info: Mapping[str, str], instance: str) -> Iterator[Metric]:
    labels = [LABEL, "db"]
    keys = GaugeMetricFamily("redis_db_keys", "Keys in each database.", labels=labels)
    expiring = GaugeMetricFamily(
        "redis_db_keys_expiring", "Keys with a TTL in each database.", labels=labels
    )
    avg_ttl = GaugeMetricFamily(
        "redis_db_avg_ttl_seconds",
        "Average TTL of the keys with one, estimated by Redis from sampled keys.",
        labels=labels,
    )
    for key, value in info.items():
        if key.startswith("db") and key[2:].isdigit():
            fields = parse_fields(value)
            keys.add_metric([instance, key], float(fields.get("keys", 0)))
            expiring.add_metric([instance, key], float(fields.get("expires", 0)))
            avg_ttl.add_metric([instance, key], float(fields.get("avg_ttl", 0)) / 1e3)
    yield from (keys, expiring, avg_ttl)


def _replica_families(info: Mapping[str, str], instance: str) -> Iterator[Metric]:
    """On a master, the lag each connected replica reports (`slave<N>:...,lag=S`)."""
    lag = GaugeMetricFamily(
        "redis_replica_lag_seconds",
        "On a master: seconds since each connected replica last acknowledged (by slot index).",
        labels=[LABEL, "replica"],
    )
    for key, value in info.items():
        if key.startswith("slave") and key[5:].isdigit():
            fields = parse_fields(value)
            if "lag" in fields:
                lag.add_metric([instance, key[5:]], float(fields["lag"]))
    yield lag


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (`1e-06`, `0.000256`), like prometheus_client."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _histogram_family(
    histograms: Mapping[str, CommandLatency],
    stats: Mapping[str, CommandStats],
    kept: frozenset[str],
    instance: str,
) -> Metric:
    """Samples are built directly: `add_metric` costs ~3x as much per bucket, and this family
    has more samples than all the others together."""
    name = "cache_operation_duration_seconds"
    family = HistogramMetricFamily(
        name,
        "Command execution time per command, from LATENCY HISTOGRAM (Redis >= 7); the sum is "
        "commandstats usec.",
        labels=[LABEL, "command"],
    )
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
    return family


# --------------------------------------------------------------------------------------------
# The collector


class RedisCollector(SourceCollector):
    """One Redis instance on one long-lived connection of its own."""

    kind = "redis"

    def __init__(
        self,
        name: str,
        connection: Any,
        options: Options,
        *,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(name, secrets=secrets)
        self.options = options
        self._connection: Any = connection
        self._lock = threading.Lock()
        self._previous: Lookups | None = None
        self._histogram_supported: bool | None = None  # unknown until the server answers
        self._packed_info = connection.pack_commands([("INFO", "ALL")])
        self._packed_both = connection.pack_commands([("INFO", "ALL"), ("LATENCY", "HISTOGRAM")])

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        with self._lock:
            raw, histogram_reply = self._round_trip(ctx)
            info = parse_info(_text(raw))
            histograms = None
            if histogram_reply is not None:
                histograms = parse_latency_histogram(histogram_reply)
            lookups = Lookups(
                float(info.get("keyspace_hits", 0) or 0),
                float(info.get("keyspace_misses", 0) or 0),
            )
            families = info_families(
                info,
                self.name,
                ctx=ctx,
                command_limit=self.options.command_limit,
                histogram_command_limit=self.options.histogram_command_limit,
                previous=self._previous,
                histograms=histograms,
            )
            self._previous = lookups
        if self.options.latency_histogram and self._histogram_supported is False:
            ctx.note("LATENCY HISTOGRAM unavailable (Redis < 7): no duration histogram")
        yield from families

    def _round_trip(self, ctx: ScrapeContext) -> tuple[Any, Any]:
        """Both replies on the kept connection; one fresh try if it died (server restart)."""
        kept = _connected(self._connection)
        try:
            return self._exchange(ctx)
        except redis.ConnectionError:
            if not kept or ctx.deadline.expired():
                raise
        return self._exchange(ctx)

    def _exchange(self, ctx: ScrapeContext) -> tuple[Any, Any]:
        conn, deadline, options = self._connection, ctx.deadline, self.options
        try:
            if not _connected(conn):
                conn.socket_connect_timeout = deadline.timeout(options.connect_timeout_seconds)
                conn.socket_timeout = deadline.timeout(options.read_timeout_seconds)
                conn.connect()
                self._histogram_supported = None  # the server may have been upgraded
            with_histogram = options.latency_histogram and self._histogram_supported is not False
            _cap(conn, deadline.timeout(options.read_timeout_seconds))
            conn.send_packed_command(self._packed_both if with_histogram else self._packed_info)
            raw = conn.read_response(disable_decoding=True)
        except BaseException:
            conn.disconnect()
            raise
        if not with_histogram:
            return raw, None
        try:
            _cap(conn, deadline.timeout(options.read_timeout_seconds))
            reply = conn.read_response(disable_decoding=True)
        except redis.ResponseError:  # ERR unknown subcommand: Redis < 7
            self._histogram_supported = False
            return raw, None
        except BaseException:
            conn.disconnect()
            raise
        self._histogram_supported = True
        return raw, reply

    def down_families(self) -> Sequence[Metric]:
        return [
            up_family(
                "cache_up", "1 if the Redis instance answered INFO.", [LABEL], [self.name], False
            )
        ]

    def classify(self, exc: BaseException) -> str:
        if isinstance(exc, redis.AuthenticationError | AuthorizationError):
            return "auth"
        if isinstance(exc, redis.ResponseError) and str(exc).startswith(("NOAUTH", "NOPERM")):
            return "auth"
        if isinstance(exc, redis.TimeoutError):
            return "timeout"
        reason = classify_error(exc)
        if reason == "error" and isinstance(exc, redis.ConnectionError):
            return "connection"
        if reason == "error" and isinstance(exc, redis.ResponseError):
            return "bad_response"
        return reason

    def close(self) -> None:
        with self._lock:
            self._connection.disconnect()


def _connected(conn: Any) -> bool:
    return conn._sock is not None


def _cap(conn: Any, seconds: float) -> None:
    """The socket's timeout for the next send or read: redis-py reads with the socket's own
    timeout (its `read_response(timeout=)` is recent, this works on every version)."""
    sock = conn._sock
    if sock is not None:
        sock.settimeout(seconds)


def _own_connection(connection_class: Any, kwargs: Mapping[str, Any]) -> Any:
    """A connection that fails fast: the scrape deadline, not redis-py's retries, bounds it."""
    settings = dict(kwargs)
    settings["retry"] = Retry(NoBackoff(), 0)
    return connection_class(**settings)


def build(options: Options | None, target: Target) -> RedisCollector:
    """A collector for one configured instance. Dials nothing: it connects at its first scrape."""
    effective = target.effective_options(options or Options())
    connection_class, kwargs = connection_settings(target, effective)
    secrets = [
        target.password.reveal() if target.password else "",
        url_password(target.url) or "",
    ]
    return RedisCollector(
        target.name, _own_connection(connection_class, kwargs), effective, secrets=secrets
    )


def from_client(
    client: redis.Redis, name: str = "cache", options: Options | None = None
) -> SourceCollector:
    """Embedded mode: a collector for the application's own Redis client.

    It reads the client's connection settings and keeps one connection of its own, so the
    application's pool and its timeouts are left alone. Cluster clients are not supported.
    """
    effective = options or Options()
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(
        socket_connect_timeout=effective.connect_timeout_seconds,
        socket_timeout=effective.read_timeout_seconds,
    )
    password = kwargs.get("password")
    return RedisCollector(
        name,
        _own_connection(pool.connection_class, kwargs),
        effective,
        secrets=[password] if isinstance(password, str) else [],
    )
