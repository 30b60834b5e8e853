"""The INFO field -> metric table. Adding a field is one line here (and a check in its test).

Each row names the field, the Redis version that introduced it, the metric in base units and,
where the field is not already a number in that unit, the conversion. A field the server does
not report is left out of that scrape; one whose value is not a number is skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from collectors.specs import MetricSpec, MetricType

#: The label every Redis series carries: the configured name (never `instance`, which
#: Prometheus owns and sets to the scraped address).
LABEL = "cache"


def _micro(value: str) -> float:
    return float(value) / 1e6


def _is(expected: str) -> Callable[[str], float]:
    def convert(value: str) -> float:
        return 1.0 if value == expected else 0.0

    return convert


@dataclass(frozen=True)
class InfoField:
    """How one INFO field becomes one sample (label `cache`)."""

    key: str
    spec: MetricSpec
    convert: Callable[[str], float] = float

    @property
    def is_counter(self) -> bool:
        return self.spec.type is MetricType.COUNTER


def row(
    type: MetricType,
    key: str,
    since: str,
    name: str,
    help: str,
    convert: Callable[[str], float] = float,
    unit: str = "",
) -> InfoField:
    """One table row: the spec's source names the field and the version that introduced it."""
    source = f"INFO `{key}` (Redis {since})"
    return InfoField(key, MetricSpec(name, type, help, (LABEL,), unit, source), convert)


G, C = MetricType.GAUGE, MetricType.COUNTER
BYTES, SECONDS = "bytes", "seconds"

#: INFO field -> metric, in base units, grouped by INFO section.
# fmt: off
INFO_FIELDS: tuple[InfoField, ...] = (
    # the contract families (the metric contract, docs/redis.md)
    row(G, "used_memory", "1.0", "cache_memory_usage_bytes", "Memory allocated by Redis (INFO used_memory).", unit=BYTES),  # noqa: E501
    row(C, "evicted_keys", "1.0", "cache_evictions_total", "Keys evicted because of the maxmemory limit (INFO evicted_keys)."),  # noqa: E501
    # server
    row(G, "uptime_in_seconds", "1.0", "redis_uptime_seconds", "Seconds since the Redis server started.", unit=SECONDS),  # noqa: E501
    # clients
    row(G, "connected_clients", "1.0", "redis_connected_clients", "Client connections open (replicas excluded)."),  # noqa: E501
    row(G, "blocked_clients", "1.0", "redis_blocked_clients", "Clients waiting in a blocking call (BLPOP, XREAD, WAIT...)."),  # noqa: E501
    row(G, "maxclients", "6.2", "redis_max_clients", "The maxclients setting."),
    # memory
    row(G, "used_memory_rss", "1.0", "redis_memory_used_rss_bytes", "Resident memory of the Redis process, as the OS sees it.", unit=BYTES),  # noqa: E501
    row(G, "used_memory_peak", "2.4", "redis_memory_used_peak_bytes", "Peak of used_memory since start.", unit=BYTES),  # noqa: E501
    row(G, "maxmemory", "3.2", "redis_memory_max_bytes", "The maxmemory setting (0: no limit).", unit=BYTES),  # noqa: E501
    row(G, "mem_fragmentation_ratio", "1.0", "redis_memory_fragmentation_ratio", "used_memory_rss / used_memory.", unit="ratio"),  # noqa: E501
    # stats
    row(C, "keyspace_hits", "2.0", "redis_keyspace_hits_total", "Key lookups that found the key."),  # noqa: E501
    row(C, "keyspace_misses", "2.0", "redis_keyspace_misses_total", "Key lookups that did not find the key."),  # noqa: E501
    row(C, "expired_keys", "2.0", "redis_expired_keys_total", "Keys removed because their TTL passed."),  # noqa: E501
    row(C, "evicted_keys", "1.0", "redis_evicted_keys_total", "Keys evicted because of the maxmemory limit."),  # noqa: E501
    row(C, "total_commands_processed", "1.0", "redis_commands_processed_total", "Commands processed by the server."),  # noqa: E501
    row(C, "total_connections_received", "1.0", "redis_connections_received_total", "Connections accepted by the server."),  # noqa: E501
    row(C, "rejected_connections", "2.6", "redis_rejected_connections_total", "Connections refused because of the maxclients limit."),  # noqa: E501
    row(C, "total_error_replies", "6.2", "redis_error_replies_total", "Error replies sent (rejected and failed commands)."),  # noqa: E501
    row(C, "total_net_input_bytes", "2.8", "redis_net_input_bytes_total", "Bytes read from the network.", unit=BYTES),  # noqa: E501
    row(C, "total_net_output_bytes", "2.8", "redis_net_output_bytes_total", "Bytes written to the network.", unit=BYTES),  # noqa: E501
    row(G, "latest_fork_usec", "2.6", "redis_latest_fork_seconds", "Duration of the latest fork (BGSAVE, AOF rewrite).", convert=_micro, unit=SECONDS),  # noqa: E501
    # persistence
    row(G, "rdb_changes_since_last_save", "2.6", "redis_rdb_changes_since_last_save", "Writes since the last RDB save."),  # noqa: E501
    row(G, "rdb_last_bgsave_status", "2.6", "redis_rdb_last_bgsave_ok", "1 if the last RDB save succeeded.", convert=_is("ok")),  # noqa: E501
    row(G, "rdb_last_save_time", "2.6", "redis_rdb_last_save_timestamp_seconds", "When the last RDB save succeeded (Unix time).", unit=SECONDS),  # noqa: E501
    # replication
    row(G, "connected_slaves", "1.0", "redis_connected_replicas", "Replicas connected to this master."),  # noqa: E501
    row(G, "master_link_status", "1.0", "redis_master_link_up", "On a replica: 1 if the link to its master is up.", convert=_is("up")),  # noqa: E501
    row(G, "master_last_io_seconds_ago", "1.0", "redis_master_last_io_seconds", "On a replica: seconds since the last interaction with its master.", unit=SECONDS),  # noqa: E501
    row(G, "master_repl_offset", "2.8", "redis_replication_offset_bytes", "Replication offset of this server.", unit=BYTES),  # noqa: E501
    # cpu
    row(C, "used_cpu_sys", "1.0", "redis_cpu_sys_seconds_total", "System CPU time used by the Redis server.", unit=SECONDS),  # noqa: E501
    row(C, "used_cpu_user", "1.0", "redis_cpu_user_seconds_total", "User CPU time used by the Redis server.", unit=SECONDS),  # noqa: E501
)
# fmt: on
