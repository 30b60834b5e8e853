"""The Cache dashboard: Redis hit ratio, memory, evictions, commands, clients and latency."""

from __future__ import annotations

from alerts.thresholds import CACHE_HIT_RATIO_MIN, CACHE_MEMORY_RATIO
from grafana.panels import (
    RATE,
    TARGET,
    Board,
    Row,
    instance_variable,
    job_variable,
    query,
    red_above,
    red_below,
    stat_panel,
    timeseries_panel,
)

CACHE = TARGET
LOOKUP = f'{CACHE}, operation="lookup"'
LOOKUP_HIT = f'{LOOKUP}, result="hit"'

BOARD = Board(
    "afirgen-cache",
    "afirgen / Cache",
    "Redis as the backend's cache, from INFO at scrape time: hit ratio, memory against "
    "maxmemory, evictions, commands, clients and latency. `instance` is the configured Redis.",
    [job_variable(), instance_variable("cache_up", "Redis")],
    [
        Row(
            "Health",
            [
                stat_panel(
                    "Redis up",
                    "1 when the exporter could read INFO in the last scrape.",
                    "none",
                    query(f"cache_up{{{CACHE}}}", "{{instance}}"),
                    updown=True,
                ),
                stat_panel(
                    "Hit ratio (5m)",
                    "Key lookups that hit over all lookups, last 5 minutes (recording rule).",
                    "percentunit",
                    query(f"min(job_instance:cache_hit:ratio_rate5m{{{CACHE}}})"),
                    max=1,
                    steps=red_below(CACHE_HIT_RATIO_MIN),
                ),
                stat_panel(
                    "Memory of maxmemory",
                    "Used memory over maxmemory (absent when no maxmemory is set).",
                    "percentunit",
                    query(f"max(job_instance:cache_memory_usage:ratio{{{CACHE}}})"),
                    max=1,
                    steps=red_above(CACHE_MEMORY_RATIO),
                ),
                stat_panel(
                    "Uptime",
                    "Time since the Redis server started.",
                    "s",
                    query(f"min(redis_uptime_seconds{{{CACHE}}})"),
                ),
                timeseries_panel(
                    "Hit ratio",
                    "Hits over lookups per interval, and the exporter's own per-scrape "
                    "`cache_hit_rate` (percent / 100).",
                    "percentunit",
                    query(
                        "sum by (instance) "
                        f"(rate(cache_operations_total{{{LOOKUP_HIT}}}[{RATE}]))\n"
                        "/ (sum by (instance) "
                        f"(rate(cache_operations_total{{{LOOKUP}}}[{RATE}])) > 0)",
                        "{{instance}}",
                    ),
                    query(f"cache_hit_rate{{{CACHE}}} / 100", "{{instance}} per scrape"),
                    max=1,
                ),
                timeseries_panel(
                    "Operations by result",
                    "Key lookups that hit or missed and commands that failed, per second.",
                    "ops",
                    query(
                        f"sum by (instance, operation, result) "
                        f"(rate(cache_operations_total{{{CACHE}}}[{RATE}]))",
                        "{{instance}} {{operation}} {{result}}",
                    ),
                ),
            ],
        ),
        Row(
            "Memory and keys",
            [
                timeseries_panel(
                    "Memory",
                    "Memory Redis uses for data, against maxmemory.",
                    "bytes",
                    query(f"cache_memory_usage_bytes{{{CACHE}}}", "{{instance}} used"),
                    query(f"redis_memory_max_bytes{{{CACHE}}} > 0", "{{instance}} maxmemory"),
                ),
                timeseries_panel(
                    "Evictions and expirations",
                    "Keys evicted for memory and keys that expired, per second.",
                    "ops",
                    query(
                        f"rate(cache_evictions_total{{{CACHE}}}[{RATE}])", "{{instance}} evicted"
                    ),
                    query(
                        f"rate(redis_expired_keys_total{{{CACHE}}}[{RATE}])",
                        "{{instance}} expired",
                    ),
                ),
                timeseries_panel(
                    "Keys per db",
                    "Keys in each logical database.",
                    "short",
                    query(f"redis_db_keys{{{CACHE}}}", "{{instance}} {{db}}"),
                ),
                timeseries_panel(
                    "Fragmentation",
                    "RSS over used memory; well above 1.5 the allocator wastes memory.",
                    "none",
                    query(f"redis_memory_fragmentation_ratio{{{CACHE}}}", "{{instance}}"),
                ),
            ],
        ),
        Row(
            "Commands and clients",
            [
                timeseries_panel(
                    "Commands per second",
                    "Calls per command (top commands, the rest under 'other').",
                    "ops",
                    query(
                        f"topk(10, sum by (instance, command) "
                        f"(rate(redis_commands_total{{{CACHE}}}[{RATE}])))",
                        "{{instance}} {{command}}",
                    ),
                ),
                timeseries_panel(
                    "Command latency p99",
                    "99th percentile of command latency from Redis's LATENCY HISTOGRAM.",
                    "s",
                    query(
                        f"histogram_quantile(0.99, sum by (instance, command, le) "
                        f"(rate(cache_operation_duration_seconds_bucket{{{CACHE}}}[{RATE}])))",
                        "{{instance}} {{command}}",
                    ),
                ),
                timeseries_panel(
                    "Clients",
                    "Connected and blocked clients.",
                    "short",
                    query(f"redis_connected_clients{{{CACHE}}}", "{{instance}} connected"),
                    query(f"redis_blocked_clients{{{CACHE}}}", "{{instance}} blocked"),
                ),
                timeseries_panel(
                    "Rejected connections",
                    "Connections refused because maxclients was reached, per second.",
                    "ops",
                    query(
                        f"rate(redis_rejected_connections_total{{{CACHE}}}[{RATE}])",
                        "{{instance}}",
                    ),
                ),
            ],
        ),
    ],
)
