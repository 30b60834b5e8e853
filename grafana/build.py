"""Builds the Grafana dashboards with grafana-foundation-sdk and writes them as importable JSON.

Run `python -m grafana.build` after changing anything here; `tests/test_dashboards.py` fails
while the committed JSON differs from what this module generates. Each dashboard is a table of
rows of panels; every panel says what it shows (description) and in which unit.

The SDK models the dashboard itself. The import envelope (`__inputs` asking for a Prometheus
datasource, `__requires`) is not part of that model, so it is added around the SDK's output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from alerts.build import THRESHOLDS, write_or_check

HERE = Path(__file__).resolve().parent
GRAFANA_VERSION = "11.6.0"
TAG = "afirgen"

#: Import asks for a Prometheus datasource and substitutes it for this placeholder.
DS_INPUT = "DS_PROMETHEUS"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

#: Selectors every query starts from, narrowed by the dashboard's variables.
JOB = 'job=~"$job"'
TARGET = f'{JOB}, instance=~"$instance"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: Sequence[Query]
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    height: int = 8
    #: For up/down gauges: 0 reads "down" in red, 1 "up" in green.
    updown: bool = False
    min: float | None = None
    max: float | None = None
    #: Colour steps (from value, colour), lowest first; the alert thresholds where there is one.
    steps: Sequence[tuple[float | None, str]] = ()


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    variables: Sequence[Variable]
    rows: Sequence[Row]
    tags: Sequence[str] = field(default_factory=tuple)

    @property
    def filename(self) -> str:
        return f"{self.uid}.json"


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def ts(
    title: str, description: str, unit: str, *queries: Query, width: int = 12, **kw: Any
) -> Panel:
    return Panel(title, description, unit, queries, width=width, **kw)


def st(title: str, description: str, unit: str, *queries: Query, **kw: Any) -> Panel:
    kw.setdefault("width", 6)
    kw.setdefault("height", 4)
    return Panel(title, description, unit, queries, kind="stat", **kw)


def alert_at(name: str) -> float:
    """An alert's threshold (alerts/build.py), so a stat turns red where the alert fires."""
    return float(THRESHOLDS[name].value)


def bad_above(value: float) -> tuple[tuple[float | None, str], ...]:
    return ((None, "green"), (value, "red"))


def bad_below(value: float) -> tuple[tuple[float | None, str], ...]:
    return ((None, "red"), (value, "green"))


def job_var() -> Variable:
    return Variable("job", "Job", "label_values(afirgen_exporter_build_info, job)")


def instance_var(metric: str = "afirgen_exporter_build_info", label: str = "Instance") -> Variable:
    return Variable("instance", label, f"label_values({metric}{{{JOB}}}, instance)")


def area_var(name: str, label: str, metric: str) -> Variable:
    return Variable(name, label, f"label_values({metric}{{{TARGET}}}, {name})")


# -- the dashboards -------------------------------------------------------------------------

DB = f'{TARGET}, database=~"$database"'
CACHE = TARGET
LOOKUP = f'{CACHE}, operation="lookup"'
LOOKUP_HIT = f'{LOOKUP}, result="hit"'
MODEL = f'{TARGET}, server=~"$server"'
QUEUE = f'{TARGET}, queue=~"$queue"'
API = f'{TARGET}, endpoint=~"$endpoint"'
RATE = "$__rate_interval"

EXPORTER = Board(
    "afirgen-exporter",
    "afirgen / Exporter",
    "The exporter itself: is it scraped, which collectors succeed, how long they take, what "
    "their label budgets cut, and the exporter process's own CPU and memory.",
    [job_var(), instance_var()],
    [
        Row(
            "Scrapes",
            [
                st(
                    "Exporter up",
                    "Prometheus's own `up` for the exporter: 1 when the last scrape worked.",
                    "none",
                    q(f"up{{{TARGET}}}", "{{instance}}"),
                    updown=True,
                ),
                st(
                    "Failing collectors",
                    "Collectors that failed their last scrape (0 is healthy).",
                    "short",
                    q(f"count(afirgen_exporter_collector_success{{{TARGET}}} == 0) or vector(0)"),
                    steps=bad_above(1),
                ),
                st(
                    "Config reload",
                    "1 if the last config reload succeeded (or none was tried).",
                    "none",
                    q(
                        f"min(afirgen_exporter_config_last_reload_successful{{{TARGET}}})",
                        "reload",
                    ),
                    updown=True,
                ),
                st(
                    "Series dropped",
                    "Series folded into 'other' by the label budgets in the last scrape.",
                    "short",
                    q(f"sum(afirgen_exporter_series_dropped{{{TARGET}}})"),
                    steps=((None, "green"), (1, "orange")),
                ),
                ts(
                    "Collector success",
                    "1 when a collector read its source in the last scrape, 0 when it failed "
                    "or ran out of time (the landing page says why).",
                    "none",
                    q(
                        f"afirgen_exporter_collector_success{{{TARGET}}}",
                        "{{collector}} {{target}}",
                    ),
                    min=0,
                    max=1,
                ),
                ts(
                    "Collector duration",
                    "Time each collector took in the scrape; close to the scrape timeout means "
                    "the source is slow.",
                    "s",
                    q(
                        f"afirgen_exporter_collector_duration_seconds{{{TARGET}}}",
                        "{{collector}} {{target}}",
                    ),
                ),
                ts(
                    "Scrape duration",
                    "How long Prometheus waited for the whole scrape, and the samples it got.",
                    "s",
                    q(f"scrape_duration_seconds{{{TARGET}}}", "{{instance}}"),
                ),
                ts(
                    "Samples per scrape",
                    "Samples Prometheus ingested per scrape: the exporter's series count.",
                    "short",
                    q(f"scrape_samples_scraped{{{TARGET}}}", "{{instance}}"),
                ),
                ts(
                    "Series dropped by label budgets",
                    "Series folded into 'other' per collector and target in each scrape.",
                    "short",
                    q(
                        f"afirgen_exporter_series_dropped{{{TARGET}}}",
                        "{{collector}} {{target}}",
                    ),
                ),
            ],
        ),
        Row(
            "Exporter process",
            [
                ts(
                    "CPU",
                    "CPU time the exporter process uses per second (1 = one core).",
                    "percentunit",
                    q(f"rate(process_cpu_seconds_total{{{TARGET}}}[{RATE}])", "{{instance}}"),
                ),
                ts(
                    "Memory",
                    "Resident memory of the exporter process.",
                    "bytes",
                    q(f"process_resident_memory_bytes{{{TARGET}}}", "{{instance}}"),
                ),
                ts(
                    "Open file descriptors",
                    "Sockets and files the exporter holds; a steady climb is a leak.",
                    "short",
                    q(f"process_open_fds{{{TARGET}}}", "{{instance}}"),
                ),
            ],
        ),
    ],
)

DATABASE = Board(
    "afirgen-database",
    "afirgen / Database",
    "SQLAlchemy pools (read from the engine at scrape time) and the database servers' own "
    "statistics: connections, transactions, deadlocks, sizes, rows and statements.",
    [job_var(), instance_var("db_up"), area_var("database", "Database", "db_up")],
    [
        Row(
            "Availability and pool",
            [
                st(
                    "Database up",
                    "1 when the exporter could query the database in the last scrape.",
                    "none",
                    q(f"db_up{{{DB}}}", "{{database}}"),
                    updown=True,
                ),
                st(
                    "Pool utilisation",
                    "Connections checked out over pool capacity (pool size + max overflow).",
                    "percentunit",
                    q(f"max(job_database:db_connection_pool_checked_out:ratio{{{DB}}})"),
                    max=1,
                    steps=bad_above(alert_at("pool_saturation_ratio")),
                ),
                ts(
                    "Ping",
                    "Round trip of a trivial query from the exporter.",
                    "s",
                    q(f"db_ping_duration_seconds{{{DB}}}", "{{database}}"),
                    width=12,
                ),
                ts(
                    "Pool connections",
                    "The application pool: capacity, checked out, idle in the pool, overflow.",
                    "short",
                    q(f"db_connection_pool_size{{{DB}}}", "{{database}} capacity"),
                    q(f"db_connection_pool_checked_out{{{DB}}}", "{{database}} checked out"),
                    q(f"db_connection_pool_available{{{DB}}}", "{{database}} available"),
                    q(f"db_connection_pool_overflow{{{DB}}}", "{{database}} overflow"),
                ),
                ts(
                    "Pool utilisation",
                    "Checked out over capacity (recording rule); at 100% requests wait.",
                    "percentunit",
                    q(
                        f"job_database:db_connection_pool_checked_out:ratio{{{DB}}}",
                        "{{database}}",
                    ),
                    max=1,
                ),
            ],
        ),
        Row(
            "Server",
            [
                ts(
                    "Server connections by state",
                    "Connections on the server (all clients, not only this app) by state.",
                    "short",
                    q(f"db_connections{{{DB}}}", "{{database}} {{state}}"),
                    q(f"db_connections_max{{{DB}}}", "{{database}} max"),
                ),
                ts(
                    "Server connections used",
                    "Connections over the server's maximum (recording rule).",
                    "percentunit",
                    q(f"job_database:db_connections:ratio{{{DB}}}", "{{database}}"),
                    max=1,
                ),
                ts(
                    "Transactions",
                    "Commits and rollbacks per second.",
                    "ops",
                    q(
                        f"rate(db_transactions_committed_total{{{DB}}}[{RATE}])",
                        "{{database}} commit",
                    ),
                    q(
                        f"rate(db_transactions_rolled_back_total{{{DB}}}[{RATE}])",
                        "{{database}} rollback",
                    ),
                ),
                ts(
                    "Deadlocks",
                    "Deadlocks the server detected, per interval.",
                    "short",
                    q(f"increase(db_deadlocks_total{{{DB}}}[{RATE}])", "{{database}}"),
                ),
                ts(
                    "Longest transaction",
                    "Age of the oldest open transaction; long ones hold locks and block vacuum.",
                    "s",
                    q(f"db_longest_transaction_seconds{{{DB}}}", "{{database}}"),
                ),
                ts(
                    "Database size",
                    "Size of the database on disk.",
                    "bytes",
                    q(f"db_size_bytes{{{DB}}}", "{{database}}"),
                ),
            ],
        ),
        Row(
            "Tables and statements",
            [
                ts(
                    "Rows per second by table",
                    "Rows read, inserted, updated and deleted per second (top tables; the "
                    "rest under 'other').",
                    "rowsps",
                    *(
                        q(
                            f"topk(5, sum by (database, table) "
                            f"(rate(db_table_rows_{op}_total{{{DB}}}[{RATE}])))",
                            "{{database}} {{table}} " + op,
                        )
                        for op in ("read", "inserted", "updated", "deleted")
                    ),
                ),
                ts(
                    "Dead rows",
                    "Estimated dead rows per table (PostgreSQL): what vacuum has yet to clean.",
                    "short",
                    q(f"topk(10, db_table_dead_rows{{{DB}}})", "{{database}} {{table}}"),
                ),
                ts(
                    "Statements per second",
                    "Statements by type and main table, where the server tracks statements "
                    "(pg_stat_statements, performance_schema).",
                    "ops",
                    q(
                        f"sum by (database, type, table) (rate(db_queries_total{{{DB}}}[{RATE}]))",
                        "{{database}} {{type}} {{table}}",
                    ),
                ),
                ts(
                    "Mean statement time",
                    "Statement time over statement count, by type.",
                    "s",
                    q(
                        f"sum by (database, type) "
                        f"(rate(db_query_duration_seconds_sum{{{DB}}}[{RATE}]))\n"
                        f"/ sum by (database, type) "
                        f"(rate(db_query_duration_seconds_count{{{DB}}}[{RATE}]))",
                        "{{database}} {{type}}",
                    ),
                ),
            ],
        ),
    ],
)

CACHE_BOARD = Board(
    "afirgen-cache",
    "afirgen / Cache",
    "Redis as the backend's cache, from INFO at scrape time: hit ratio, memory against "
    "maxmemory, evictions, commands, clients and latency. `instance` is the configured Redis.",
    [job_var(), instance_var("cache_up", "Redis")],
    [
        Row(
            "Health",
            [
                st(
                    "Redis up",
                    "1 when the exporter could read INFO in the last scrape.",
                    "none",
                    q(f"cache_up{{{CACHE}}}", "{{instance}}"),
                    updown=True,
                ),
                st(
                    "Hit ratio (5m)",
                    "Key lookups that hit over all lookups, last 5 minutes (recording rule).",
                    "percentunit",
                    q(f"min(job_instance:cache_hit:ratio_rate5m{{{CACHE}}})"),
                    max=1,
                    steps=bad_below(alert_at("cache_hit_ratio_min")),
                ),
                st(
                    "Memory of maxmemory",
                    "Used memory over maxmemory (absent when no maxmemory is set).",
                    "percentunit",
                    q(f"max(job_instance:cache_memory_usage:ratio{{{CACHE}}})"),
                    max=1,
                    steps=bad_above(alert_at("cache_memory_ratio")),
                ),
                st(
                    "Uptime",
                    "Time since the Redis server started.",
                    "s",
                    q(f"min(redis_uptime_seconds{{{CACHE}}})"),
                ),
                ts(
                    "Hit ratio",
                    "Hits over lookups per interval, and the exporter's own per-scrape "
                    "`cache_hit_rate` (percent / 100).",
                    "percentunit",
                    q(
                        "sum by (instance) "
                        f"(rate(cache_operations_total{{{LOOKUP_HIT}}}[{RATE}]))\n"
                        "/ (sum by (instance) "
                        f"(rate(cache_operations_total{{{LOOKUP}}}[{RATE}])) > 0)",
                        "{{instance}}",
                    ),
                    q(f"cache_hit_rate{{{CACHE}}} / 100", "{{instance}} per scrape"),
                    max=1,
                ),
                ts(
                    "Operations by result",
                    "Key lookups that hit or missed and commands that failed, per second.",
                    "ops",
                    q(
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
                ts(
                    "Memory",
                    "Memory Redis uses for data, against maxmemory.",
                    "bytes",
                    q(f"cache_memory_usage_bytes{{{CACHE}}}", "{{instance}} used"),
                    q(f"redis_memory_max_bytes{{{CACHE}}} > 0", "{{instance}} maxmemory"),
                ),
                ts(
                    "Evictions and expirations",
                    "Keys evicted for memory and keys that expired, per second.",
                    "ops",
                    q(f"rate(cache_evictions_total{{{CACHE}}}[{RATE}])", "{{instance}} evicted"),
                    q(
                        f"rate(redis_expired_keys_total{{{CACHE}}}[{RATE}])",
                        "{{instance}} expired",
                    ),
                ),
                ts(
                    "Keys per db",
                    "Keys in each logical database.",
                    "short",
                    q(f"redis_db_keys{{{CACHE}}}", "{{instance}} {{db}}"),
                ),
                ts(
                    "Fragmentation",
                    "RSS over used memory; well above 1.5 the allocator wastes memory.",
                    "none",
                    q(f"redis_memory_fragmentation_ratio{{{CACHE}}}", "{{instance}}"),
                ),
            ],
        ),
        Row(
            "Commands and clients",
            [
                ts(
                    "Commands per second",
                    "Calls per command (top commands, the rest under 'other').",
                    "ops",
                    q(
                        f"topk(10, sum by (instance, command) "
                        f"(rate(redis_commands_total{{{CACHE}}}[{RATE}])))",
                        "{{instance}} {{command}}",
                    ),
                ),
                ts(
                    "Command latency p99",
                    "99th percentile of command latency from Redis's LATENCY HISTOGRAM.",
                    "s",
                    q(
                        f"histogram_quantile(0.99, sum by (instance, command, le) "
                        f"(rate(cache_operation_duration_seconds_bucket{{{CACHE}}}[{RATE}])))",
                        "{{instance}} {{command}}",
                    ),
                ),
                ts(
                    "Clients",
                    "Connected and blocked clients.",
                    "short",
                    q(f"redis_connected_clients{{{CACHE}}}", "{{instance}} connected"),
                    q(f"redis_blocked_clients{{{CACHE}}}", "{{instance}} blocked"),
                ),
                ts(
                    "Rejected connections",
                    "Connections refused because maxclients was reached, per second.",
                    "ops",
                    q(
                        f"rate(redis_rejected_connections_total{{{CACHE}}}[{RATE}])",
                        "{{instance}}",
                    ),
                ),
            ],
        ),
    ],
)

MODEL_SERVERS = Board(
    "afirgen-model-servers",
    "afirgen / Model servers",
    "Model servers probed at scrape time through their health APIs: live, ready, per-model "
    "readiness, probe latency and outcomes.",
    [job_var(), instance_var("model_server_up"), area_var("server", "Server", "model_server_up")],
    [
        Row(
            "Health",
            [
                st(
                    "Ready",
                    "1 when the server answered its readiness probe in the last scrape.",
                    "none",
                    q(f"model_server_availability{{{MODEL}}}", "{{server}}"),
                    updown=True,
                    width=12,
                ),
                st(
                    "Models not ready",
                    "Configured models the servers do not report ready (0 is healthy).",
                    "short",
                    q(f"count(model_server_model_ready{{{MODEL}}} == 0) or vector(0)"),
                    width=12,
                    steps=bad_above(1),
                ),
                ts(
                    "Live and ready",
                    "Liveness (`model_server_up`) and readiness per server.",
                    "none",
                    q(f"model_server_up{{{MODEL}}}", "{{server}} live"),
                    q(f"model_server_availability{{{MODEL}}}", "{{server}} ready"),
                    min=0,
                    max=1,
                ),
                ts(
                    "Model readiness",
                    "Per configured model: 1 ready, 0 not.",
                    "none",
                    q(f"model_server_model_ready{{{MODEL}}}", "{{server}} {{model}}"),
                    min=0,
                    max=1,
                ),
            ],
        ),
        Row(
            "Probes",
            [
                ts(
                    "Probe latency",
                    "Quantiles of probe latency from the histogram accumulated across scrapes.",
                    "s",
                    q(
                        f"histogram_quantile(0.5, sum by (server, le) "
                        f"(rate(model_server_latency_seconds_bucket{{{MODEL}}}[{RATE}])))",
                        "{{server}} p50",
                    ),
                    q(
                        f"histogram_quantile(0.95, sum by (server, le) "
                        f"(rate(model_server_latency_seconds_bucket{{{MODEL}}}[{RATE}])))",
                        "{{server}} p95",
                    ),
                ),
                ts(
                    "Probe outcomes",
                    "Probes per second by outcome: HTTP status class or a failure reason.",
                    "ops",
                    q(
                        f"sum by (server, status) "
                        f"(rate(model_server_requests_total{{{MODEL}}}[{RATE}]))",
                        "{{server}} {{status}}",
                    ),
                ),
                ts(
                    "p95 latency (5m)",
                    "p95 probe latency over 5 minutes (recording rule the alert uses).",
                    "s",
                    q(
                        f"job_server:model_server_latency_seconds:p95_rate5m{{{MODEL}}}",
                        "{{server}}",
                    ),
                ),
                ts(
                    "Version",
                    "Server kind and version reported by the server (1 per version).",
                    "none",
                    q(
                        f"model_server_info{{{MODEL}}}",
                        "{{server}} {{kind}} {{version}}",
                    ),
                ),
            ],
        ),
    ],
)

TASK_QUEUE = Board(
    "afirgen-task-queue",
    "afirgen / Task queue",
    "Background work read from the broker at scrape time: waiting tasks per queue and "
    "priority, in progress, age of the oldest, workers, outcomes.",
    [
        job_var(),
        instance_var("background_tasks_up"),
        area_var("queue", "Queue", "background_tasks_queued"),
    ],
    [
        Row(
            "Backlog",
            [
                st(
                    "Broker up",
                    "1 when the exporter could read the broker in the last scrape.",
                    "none",
                    q(f"background_tasks_up{{{TARGET}}}", "{{backend}}"),
                    updown=True,
                ),
                st(
                    "Waiting tasks",
                    "Tasks waiting in the selected queues.",
                    "short",
                    q(f"sum(background_tasks_queued{{{QUEUE}}})"),
                ),
                st(
                    "Workers",
                    "Workers online.",
                    "short",
                    q(f"sum(background_tasks_workers{{{TARGET}}}) or vector(0)"),
                    steps=bad_below(1),
                ),
                st(
                    "Oldest waiting task",
                    "Age of the oldest task waiting in the selected queues.",
                    "s",
                    q(f"max(background_tasks_oldest_waiting_age_seconds{{{QUEUE}}})"),
                    steps=bad_above(alert_at("oldest_task_seconds")),
                ),
                ts(
                    "Waiting tasks by queue and priority",
                    "Tasks waiting per queue and priority.",
                    "short",
                    q(
                        f"background_tasks_queued{{{QUEUE}}}",
                        "{{backend}} {{queue}} {{priority}}",
                    ),
                ),
                ts(
                    "In progress",
                    "Tasks taken by a worker and not finished.",
                    "short",
                    q(f"background_tasks_in_progress{{{QUEUE}}}", "{{queue}}"),
                ),
                ts(
                    "Oldest waiting task",
                    "How long the oldest waiting task has waited, per queue.",
                    "s",
                    q(f"background_tasks_oldest_waiting_age_seconds{{{QUEUE}}}", "{{queue}}"),
                ),
                ts(
                    "Workers",
                    "Workers seen by the broker, by state (Celery and RQ).",
                    "short",
                    q(f"background_tasks_workers{{{TARGET}}}", "{{backend}} {{state}}"),
                ),
                ts(
                    "Consumers",
                    "Consumers attached to each queue (RabbitMQ).",
                    "short",
                    q(f"background_tasks_queue_consumers{{{QUEUE}}}", "{{backend}} {{queue}}"),
                ),
                ts(
                    "RQ registries",
                    "Live entries of RQ's job registries per queue: started, finished, "
                    "failed, deferred, scheduled, canceled.",
                    "short",
                    q(
                        f"background_tasks_registry{{{QUEUE}}}",
                        "{{backend}} {{queue}} {{registry}}",
                    ),
                ),
            ],
        ),
        Row(
            "Outcomes",
            [
                ts(
                    "Processed per second",
                    "Tasks finished per second by outcome, where the backend keeps totals.",
                    "ops",
                    q(
                        f"sum by (backend, status) "
                        f"(rate(background_tasks_processed_total{{{TARGET}}}[{RATE}]))",
                        "{{backend}} {{status}}",
                    ),
                ),
                ts(
                    "Failure ratio (15m)",
                    "Failed tasks over all finished tasks (recording rule the alert uses).",
                    "percentunit",
                    q(
                        f"job_backend:background_tasks_failed:ratio_rate15m{{{TARGET}}}",
                        "{{backend}}",
                    ),
                    max=1,
                ),
                ts(
                    "Mean task duration",
                    "Working time over finished tasks, where the backend keeps it.",
                    "s",
                    q(
                        f"sum by (backend, type) "
                        f"(rate(background_task_duration_seconds_sum{{{TARGET}}}[{RATE}]))\n"
                        f"/ sum by (backend, type) "
                        f"(rate(background_task_duration_seconds_count{{{TARGET}}}[{RATE}]))",
                        "{{backend}} {{type}}",
                    ),
                ),
            ],
        ),
    ],
)

HOST = Board(
    "afirgen-host",
    "afirgen / Host",
    "The host the exporter runs on, through psutil: CPU, memory, load, disk and network I/O, "
    "filesystems.",
    [job_var(), instance_var("system_memory_percent")],
    [
        Row(
            "CPU and memory",
            [
                ts(
                    "CPU busy",
                    "Share of CPU time not idle, from the CPU-seconds counters.",
                    "percentunit",
                    q(f"job_instance:system_cpu_utilisation:rate5m{{{TARGET}}}", "{{instance}}"),
                    max=1,
                ),
                ts(
                    "Memory used",
                    "Memory in use, percent of total (total - available).",
                    "percent",
                    q(f"system_memory_percent{{{TARGET}}}", "{{instance}}"),
                    max=100,
                ),
                ts(
                    "Load",
                    "Load averages over 1, 5 and 15 minutes, against the CPU count.",
                    "short",
                    q(f"system_load1{{{TARGET}}}", "{{instance}} 1m"),
                    q(f"system_load5{{{TARGET}}}", "{{instance}} 5m"),
                    q(f"system_load15{{{TARGET}}}", "{{instance}} 15m"),
                    q(f"system_cpus{{{TARGET}}}", "{{instance}} CPUs"),
                ),
                ts(
                    "Memory",
                    "Available and used memory.",
                    "bytes",
                    q(f"system_memory_available_bytes{{{TARGET}}}", "{{instance}} available"),
                    q(f"system_memory_used_bytes{{{TARGET}}}", "{{instance}} used"),
                ),
            ],
        ),
        Row(
            "I/O and filesystems",
            [
                ts(
                    "Disk I/O",
                    "Bytes read and written per second, all disks.",
                    "Bps",
                    q(
                        f"rate(system_disk_io_read_bytes_total{{{TARGET}}}[{RATE}])",
                        "{{instance}} read",
                    ),
                    q(
                        f"rate(system_disk_io_write_bytes_total{{{TARGET}}}[{RATE}])",
                        "{{instance}} write",
                    ),
                ),
                ts(
                    "Network",
                    "Bytes sent and received per second, loopback excluded.",
                    "Bps",
                    q(
                        f"rate(system_network_sent_bytes_total{{{TARGET}}}[{RATE}])",
                        "{{instance}} sent",
                    ),
                    q(
                        f"rate(system_network_recv_bytes_total{{{TARGET}}}[{RATE}])",
                        "{{instance}} received",
                    ),
                ),
                ts(
                    "Filesystem free",
                    "Space available over filesystem size, per mount point.",
                    "percentunit",
                    q(
                        f"job_instance_mountpoint:system_filesystem_avail:ratio{{{TARGET}}}",
                        "{{instance}} {{mountpoint}}",
                    ),
                    max=1,
                ),
            ],
        ),
    ],
)

API_BOARD = Board(
    "afirgen-api",
    "afirgen / API",
    "The backend's HTTP API as its ASGI middleware counts it (embedded mode only): requests by "
    "route template, errors, latency and requests in flight.",
    [
        job_var(),
        instance_var("api_requests_total"),
        area_var("endpoint", "Endpoint", "api_requests_total"),
    ],
    [
        Row(
            "Requests",
            [
                ts(
                    "Requests per second",
                    "Requests by route template and status.",
                    "reqps",
                    q(
                        f"sum by (endpoint, status) (rate(api_requests_total{{{API}}}[{RATE}]))",
                        "{{endpoint}} {{status}}",
                    ),
                ),
                ts(
                    "Server errors",
                    "Share of requests answered 5xx, 5 minute window (recording rule).",
                    "percentunit",
                    q(
                        f"job_endpoint:api_requests_errors:ratio_rate5m{{{API}}}",
                        "{{endpoint}}",
                    ),
                    max=1,
                ),
                ts(
                    "Latency",
                    "Median and 95th percentile of request duration by route template.",
                    "s",
                    q(
                        f"histogram_quantile(0.5, sum by (endpoint, le) "
                        f"(rate(api_request_duration_seconds_bucket{{{API}}}[{RATE}])))",
                        "{{endpoint}} p50",
                    ),
                    q(
                        f"histogram_quantile(0.95, sum by (endpoint, le) "
                        f"(rate(api_request_duration_seconds_bucket{{{API}}}[{RATE}])))",
                        "{{endpoint}} p95",
                    ),
                ),
                ts(
                    "In progress",
                    "Requests being served right now.",
                    "short",
                    q(
                        f"sum by (endpoint, method) (api_requests_in_progress{{{API}}})",
                        "{{method}} {{endpoint}}",
                    ),
                ),
            ],
        ),
    ],
)

OVERVIEW = Board(
    "afirgen-overview",
    "afirgen / Overview",
    "Every part of the backend at a glance: exporter, databases, caches, model servers, task "
    "queue, host and API. Each row links to its own dashboard.",
    [job_var(), instance_var("up")],
    [
        Row(
            "Health",
            [
                st(
                    "Exporters up",
                    "Exporter scrapes that worked over all exporter scrapes.",
                    "percentunit",
                    q(f"avg(up{{{TARGET}}})"),
                    max=1,
                    steps=bad_below(1),
                ),
                st(
                    "Failing collectors",
                    "Collectors that failed their last scrape.",
                    "short",
                    q(f"count(afirgen_exporter_collector_success{{{TARGET}}} == 0) or vector(0)"),
                    steps=bad_above(1),
                ),
                st(
                    "Databases down",
                    "Configured databases the exporter could not query.",
                    "short",
                    q(f"count(db_up{{{TARGET}}} == 0) or vector(0)"),
                    steps=bad_above(1),
                ),
                st(
                    "Caches down",
                    "Configured Redis instances the exporter could not read.",
                    "short",
                    q(f"count(cache_up{{{TARGET}}} == 0) or vector(0)"),
                    steps=bad_above(1),
                ),
                st(
                    "Model servers not ready",
                    "Model servers whose readiness probe failed.",
                    "short",
                    q(f"count(model_server_availability{{{TARGET}}} == 0) or vector(0)"),
                    steps=bad_above(1),
                ),
                st(
                    "Waiting tasks",
                    "Tasks waiting in every queue.",
                    "short",
                    q(f"sum(background_tasks_queued{{{TARGET}}}) or vector(0)"),
                ),
                st(
                    "Host CPU busy",
                    "The busiest host's CPU, 5 minute average.",
                    "percentunit",
                    q(f"max(job_instance:system_cpu_utilisation:rate5m{{{TARGET}}})"),
                    max=1,
                    steps=bad_above(alert_at("host_cpu_ratio")),
                ),
                st(
                    "API 5xx ratio",
                    "The worst endpoint's share of 5xx answers, 5 minutes.",
                    "percentunit",
                    q(f"max(job_endpoint:api_requests_errors:ratio_rate5m{{{TARGET}}})"),
                    max=1,
                    steps=bad_above(alert_at("api_error_ratio")),
                ),
                ts(
                    "Firing alerts",
                    "The afirgen alerts firing now, by name (Prometheus's ALERTS series).",
                    "short",
                    q(
                        'sum by (alertname, severity) (ALERTS{alertname=~"Afirgen.*", '
                        'alertstate="firing"})',
                        "{{alertname}} ({{severity}})",
                    ),
                    width=24,
                ),
            ],
        ),
        Row(
            "Trends",
            [
                ts(
                    "Database pool utilisation",
                    "Checked out over capacity, per database.",
                    "percentunit",
                    q(
                        f"job_database:db_connection_pool_checked_out:ratio{{{TARGET}}}",
                        "{{database}}",
                    ),
                    max=1,
                    width=8,
                ),
                ts(
                    "Cache hit ratio",
                    "Hits over lookups, 5 minutes, per Redis.",
                    "percentunit",
                    q(f"job_instance:cache_hit:ratio_rate5m{{{TARGET}}}", "{{instance}}"),
                    max=1,
                    width=8,
                ),
                ts(
                    "Model server p95 latency",
                    "p95 probe latency, 5 minutes, per server.",
                    "s",
                    q(
                        f"job_server:model_server_latency_seconds:p95_rate5m{{{TARGET}}}",
                        "{{server}}",
                    ),
                    width=8,
                ),
                ts(
                    "Waiting tasks per queue",
                    "Tasks waiting, summed over priorities.",
                    "short",
                    q(f"job_queue:background_tasks_queued:sum{{{TARGET}}}", "{{queue}}"),
                    width=8,
                ),
                ts(
                    "Host memory used",
                    "Memory in use per host.",
                    "percent",
                    q(f"system_memory_percent{{{TARGET}}}", "{{instance}}"),
                    max=100,
                    width=8,
                ),
                ts(
                    "API requests per second",
                    "All API requests per second.",
                    "reqps",
                    q(f"sum by (instance) (rate(api_requests_total{{{TARGET}}}[{RATE}]))"),
                    width=8,
                ),
            ],
        ),
    ],
)

BOARDS: tuple[Board, ...] = (
    OVERVIEW,
    EXPORTER,
    DATABASE,
    CACHE_BOARD,
    MODEL_SERVERS,
    TASK_QUEUE,
    HOST,
    API_BOARD,
)


# -- building with the SDK -------------------------------------------------------------------

UPDOWN = [
    model.ValueMap(
        options={
            "0": model.ValueMappingResult(text="down", color="red", index=0),
            "1": model.ValueMappingResult(text="up", color="green", index=1),
        }
    )
]


def _query(query: Query, ref: str) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
    if query.legend:
        built = built.legend_format(query.legend)
    return built


def _panel(panel: Panel, panel_id: int) -> Any:
    builder: Any
    if panel.kind == "stat":
        builder = stat.Panel()
    else:
        builder = timeseries.Panel().fill_opacity(10)
    builder = (
        builder.id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .unit(panel.unit)
        .datasource(DATASOURCE)
        .span(panel.width)
        .height(panel.height)
    )
    for index, query in enumerate(panel.queries):
        builder = builder.with_target(_query(query, chr(ord("A") + index)))
    if panel.updown:
        builder = builder.mappings(UPDOWN)
    if panel.min is not None:
        builder = builder.min(panel.min)
    if panel.max is not None:
        builder = builder.max(panel.max)
    if panel.steps:
        builder = builder.thresholds(
            dash.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=v, color=c) for v, c in panel.steps])
        )
    return builder


def _variables(board: Board) -> list[Any]:
    datasource = (
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(text="Prometheus", value="${" + DS_INPUT + "}"))
    )
    built: list[Any] = [datasource]
    for var in board.variables:
        built.append(
            dash.QueryVariable(var.name)
            .label(var.label)
            .datasource(DATASOURCE)
            .query(var.query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(model.VariableOption(text="All", value="$__all"))
        )
    return built


def build_dashboard(board: Board) -> dict[str, Any]:
    """The dashboard as the SDK encodes it (no import envelope)."""
    builder = (
        dash.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags([TAG, *board.tags])
        .editable()
        .timezone("browser")
        .refresh("30s")
        .time("now-3h", "now")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("afirgen dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for variable in _variables(board):
        builder = builder.with_variable(variable)
    panel_id = 1
    for row in board.rows:
        builder = builder.with_row(dash.Row(row.title).id(panel_id))
        panel_id += 1
        for panel in row.panels:
            builder = builder.with_panel(_panel(panel, panel_id))
            panel_id += 1
    encoded: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return encoded


def _requires(dashboard: dict[str, Any]) -> list[dict[str, str]]:
    kinds = sorted({p["type"] for p in dashboard["panels"] if p["type"] != "row"})
    names = {"stat": "Stat", "timeseries": "Time series"}
    requires = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ]
    requires += [{"type": "panel", "id": k, "name": names[k], "version": ""} for k in kinds]
    return requires


def importable(board: Board) -> dict[str, Any]:
    """The dashboard with the envelope Grafana's import reads."""
    dashboard = build_dashboard(board)
    envelope: dict[str, Any] = {
        "__inputs": [
            {
                "name": DS_INPUT,
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the afirgen exporter.",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": _requires(dashboard),
    }
    envelope.update(dashboard)
    return envelope


def render() -> dict[Path, str]:
    """Every generated file and its content."""
    return {
        HERE / board.filename: json.dumps(importable(board), indent=2, sort_keys=False) + "\n"
        for board in BOARDS
    }


def main(argv: list[str] | None = None) -> int:
    return write_or_check(render(), "python -m grafana.build", argv)


if __name__ == "__main__":
    sys.exit(main())
