"""The Overview dashboard: one stat and one trend per area, and the firing alerts."""

from __future__ import annotations

from alerts.thresholds import API_ERROR_RATIO, HOST_CPU_RATIO
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

BOARD = Board(
    "afirgen-overview",
    "afirgen / Overview",
    "Every part of the backend at a glance: exporter, databases, caches, model servers, task "
    "queue, host and API. Each row links to its own dashboard.",
    [job_variable(), instance_variable("up")],
    [
        Row(
            "Health",
            [
                stat_panel(
                    "Exporters up",
                    "Exporter scrapes that worked over all exporter scrapes.",
                    "percentunit",
                    query(f"avg(up{{{TARGET}}})"),
                    max=1,
                    steps=red_below(1),
                ),
                stat_panel(
                    "Failing collectors",
                    "Collectors that failed their last scrape.",
                    "short",
                    query(
                        f"count(afirgen_exporter_collector_success{{{TARGET}}} == 0) or vector(0)"
                    ),
                    steps=red_above(1),
                ),
                stat_panel(
                    "Databases down",
                    "Configured databases the exporter could not query.",
                    "short",
                    query(f"count(db_up{{{TARGET}}} == 0) or vector(0)"),
                    steps=red_above(1),
                ),
                stat_panel(
                    "Caches down",
                    "Configured Redis instances the exporter could not read.",
                    "short",
                    query(f"count(cache_up{{{TARGET}}} == 0) or vector(0)"),
                    steps=red_above(1),
                ),
                stat_panel(
                    "Model servers not ready",
                    "Model servers whose readiness probe failed.",
                    "short",
                    query(f"count(model_server_availability{{{TARGET}}} == 0) or vector(0)"),
                    steps=red_above(1),
                ),
                stat_panel(
                    "Waiting tasks",
                    "Tasks waiting in every queue.",
                    "short",
                    query(f"sum(background_tasks_queued{{{TARGET}}}) or vector(0)"),
                ),
                stat_panel(
                    "Host CPU busy",
                    "The busiest host's CPU, 5 minute average.",
                    "percentunit",
                    query(f"max(job_instance:system_cpu_utilisation:rate5m{{{TARGET}}})"),
                    max=1,
                    steps=red_above(HOST_CPU_RATIO),
                ),
                stat_panel(
                    "API 5xx ratio",
                    "The worst endpoint's share of 5xx answers, 5 minutes.",
                    "percentunit",
                    query(f"max(job_endpoint:api_requests_errors:ratio_rate5m{{{TARGET}}})"),
                    max=1,
                    steps=red_above(API_ERROR_RATIO),
                ),
                timeseries_panel(
                    "Firing alerts",
                    "The afirgen alerts firing now, by name (Prometheus's ALERTS series).",
                    "short",
                    query(
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
                timeseries_panel(
                    "Database pool utilisation",
                    "Checked out over capacity, per database.",
                    "percentunit",
                    query(
                        f"job_database:db_connection_pool_checked_out:ratio{{{TARGET}}}",
                        "{{database}}",
                    ),
                    max=1,
                    width=8,
                ),
                timeseries_panel(
                    "Cache hit ratio",
                    "Hits over lookups, 5 minutes, per Redis.",
                    "percentunit",
                    query(f"job_cache:cache_hit:ratio_rate5m{{{TARGET}}}", "{{cache}}"),
                    max=1,
                    width=8,
                ),
                timeseries_panel(
                    "Model server p95 latency",
                    "p95 inference latency from the engines' own histograms, 5 minutes, per "
                    "server.",
                    "s",
                    query(
                        f"job_server:model_server_latency_seconds:p95_rate5m{{{TARGET}}}",
                        "{{server}}",
                    ),
                    width=8,
                ),
                timeseries_panel(
                    "Waiting tasks per queue",
                    "Tasks waiting, summed over priorities.",
                    "short",
                    query(f"job_queue:background_tasks_queued:sum{{{TARGET}}}", "{{queue}}"),
                    width=8,
                ),
                timeseries_panel(
                    "Host memory used",
                    "Memory in use per host.",
                    "percent",
                    query(f"system_memory_percent{{{TARGET}}}", "{{instance}}"),
                    max=100,
                    width=8,
                ),
                timeseries_panel(
                    "API requests per second",
                    "All API requests per second.",
                    "reqps",
                    query(f"sum by (instance) (rate(api_requests_total{{{TARGET}}}[{RATE}]))"),
                    width=8,
                ),
            ],
        ),
    ],
)
