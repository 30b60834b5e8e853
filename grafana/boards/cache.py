"""The Cache dashboard: Redis hit ratio, memory, evictions, commands, clients and latency."""

from __future__ import annotations

from alerts.thresholds import CACHE_HIT_RATIO_MIN, CACHE_MEMORY_RATIO
from grafana.panels import (
    RATE,
    TARGET,
    Board,
    Row,
    area_variable,
    instance_variable,
    job_variable,
    query,
    red_above,
    red_below,
    stat_panel,
    timeseries_panel,
)

CACHE = f'{TARGET}, cache=~"$cache"'
#: The application's key lookups (the exporter's own task-queue reads are left out).
LOOKUP = f'{CACHE}, type="lookup"'
LOOKUP_HIT = f'{LOOKUP}, result="hit"'

BOARD = Board(
    "afirgen-cache",
    "afirgen / Cache",
    "Redis as the backend's cache, from INFO at scrape time: hit ratio, memory against "
    "maxmemory, evictions, commands, clients and latency. `cache` is the configured Redis; the "
    "exporter's own key lookups (task-queue reads on the same server) are left out of the hit "
    "ratio and the operations.",
    [job_variable(), instance_variable("cache_up"), area_variable("cache", "Redis", "cache_up")],
    [
        Row(
            "Health",
            [
                stat_panel(
                    "Redis up",
                    "1 when the exporter could read INFO in the last scrape.",
                    "none",
                    query(f"cache_up{{{CACHE}}}", "{{cache}}"),
                    updown=True,
                ),
                stat_panel(
                    "Hit ratio (5m)",
                    "Key lookups that hit over all lookups, last 5 minutes (recording rule).",
                    "percentunit",
                    query(f"min(job_cache:cache_hit:ratio_rate5m{{{CACHE}}})"),
                    max=1,
                    steps=red_below(CACHE_HIT_RATIO_MIN),
                ),
                stat_panel(
                    "Memory of maxmemory",
                    "Used memory over maxmemory (absent when no maxmemory is set).",
                    "percentunit",
                    query(f"max(job_cache:cache_memory_usage:ratio{{{CACHE}}})"),
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
                        "sum by (cache) "
                        f"(rate(cache_operations_total{{{LOOKUP_HIT}}}[{RATE}]))\n"
                        "/ (sum by (cache) "
                        f"(rate(cache_operations_total{{{LOOKUP}}}[{RATE}])) > 0)",
                        "{{cache}}",
                    ),
                    query(f"cache_hit_rate{{{CACHE}}} / 100", "{{cache}} per scrape"),
                    max=1,
                ),
                timeseries_panel(
                    "Operations by result",
                    "The application's key lookups that hit or missed and commands that failed, "
                    "per second.",
                    "ops",
                    query(
                        f"sum by (cache, type, result) "
                        f"(rate(cache_operations_total{{{CACHE}}}[{RATE}]))",
                        "{{cache}} {{type}} {{result}}",
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
                    query(f"cache_memory_usage_bytes{{{CACHE}}}", "{{cache}} used"),
                    query(f"redis_memory_max_bytes{{{CACHE}}} > 0", "{{cache}} maxmemory"),
                ),
                timeseries_panel(
                    "Evictions and expirations",
                    "Keys evicted for memory and keys that expired, per second.",
                    "ops",
                    query(f"rate(cache_evictions_total{{{CACHE}}}[{RATE}])", "{{cache}} evicted"),
                    query(
                        f"rate(redis_expired_keys_total{{{CACHE}}}[{RATE}])",
                        "{{cache}} expired",
                    ),
                ),
                timeseries_panel(
                    "Keys per db",
                    "Keys in each logical database.",
                    "short",
                    query(f"redis_db_keys{{{CACHE}}}", "{{cache}} {{db}}"),
                ),
                timeseries_panel(
                    "Fragmentation",
                    "RSS over used memory; well above 1.5 the allocator wastes memory.",
                    "none",
                    query(f"redis_memory_fragmentation_ratio{{{CACHE}}}", "{{cache}}"),
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
                        f"topk(10, sum by (cache, command) "
                        f"(rate(redis_commands_total{{{CACHE}}}[{RATE}])))",
                        "{{cache}} {{command}}",
                    ),
                ),
                timeseries_panel(
                    "Command latency p99",
                    "99th percentile of command latency from Redis's LATENCY HISTOGRAM.",
                    "s",
                    query(
                        f"histogram_quantile(0.99, sum by (cache, command, le) "
                        f"(rate(cache_operation_duration_seconds_bucket{{{CACHE}}}[{RATE}])))",
                        "{{cache}} {{command}}",
                    ),
                ),
                timeseries_panel(
                    "Clients",
                    "Connected and blocked clients.",
                    "short",
                    query(f"redis_connected_clients{{{CACHE}}}", "{{cache}} connected"),
                    query(f"redis_blocked_clients{{{CACHE}}}", "{{cache}} blocked"),
                ),
                timeseries_panel(
                    "Rejected connections",
                    "Connections refused because maxclients was reached, per second.",
                    "ops",
                    query(
                        f"rate(redis_rejected_connections_total{{{CACHE}}}[{RATE}])",
                        "{{cache}}",
                    ),
                ),
            ],
        ),
    ],
)
