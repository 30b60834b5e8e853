"""Writes the Prometheus recording and alerting rules from one table of thresholds.

Run `python -m alerts.build` after changing anything here; `tests/test_alerts.py` fails while the
committed YAML differs from what this module generates. Every number an operator may want to
tune is in `THRESHOLDS`, with the reason it has the value it has. The label selector every
expression starts from is `SELECTOR`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

#: Which scrape jobs the rules look at: the example config names them `afirgen` (the /metrics
#: scrape) and `afirgen-probe` (the /probe scrapes). Change it if your jobs are named otherwise.
SELECTOR = 'job=~"afirgen.*"'

#: Where `alerts/runbook.md` is published; each alert links to its own section.
RUNBOOK_URL = "https://github.com/afirgen/afirgen-exporter/blob/main/alerts/runbook.md"


@dataclass(frozen=True)
class Threshold:
    value: str
    why: str


#: Every tunable number of the rules, with the reason for its value.
THRESHOLDS: dict[str, Threshold] = {
    # --- exporter ---------------------------------------------------------------------
    "exporter_down_for": Threshold(
        "5m", "a restart or a redeploy takes well under a minute; five missed minutes is not one"
    ),
    "collector_failing_for": Threshold(
        "10m", "one slow scrape is a timeout, not an outage; the source's own alert pages sooner"
    ),
    "reload_failed_for": Threshold(
        "5m", "the old config keeps serving, so it is not urgent, but the edit did not land"
    ),
    "series_dropped_for": Threshold(
        "1h", "a label budget cut is a capacity note: it matters only when it lasts"
    ),
    # --- database ---------------------------------------------------------------------
    "database_down_for": Threshold(
        "2m", "the app fails requests as soon as the database is gone; allow a failover"
    ),
    "pool_saturation_ratio": Threshold(
        "0.9", "above 90% of pool capacity checked out, requests start waiting for connections"
    ),
    "pool_saturation_for": Threshold("5m", "bursts that fill the pool briefly are normal"),
    "connections_near_max_ratio": Threshold(
        "0.8",
        "past 80% of max_connections a deploy (twice the pools) or a replica reconnect fails",
    ),
    "connections_near_max_for": Threshold("5m", "connection storms settle within minutes"),
    "deadlock_window": Threshold(
        "10m", "deadlocks are rare events: any in the last ten minutes is worth a look"
    ),
    "deadlock_for": Threshold("1m", "one evaluation to let the counter show in both samples"),
    "long_transaction_seconds": Threshold(
        "600", "a transaction open ten minutes holds locks and blocks vacuum; app ones last ms"
    ),
    "long_transaction_for": Threshold("2m", "a nightly batch may get close; it must not stay"),
    # --- cache ------------------------------------------------------------------------
    "cache_down_for": Threshold(
        "1m", "the app falls back to the database without its cache: that load spike hurts fast"
    ),
    "cache_hit_ratio_min": Threshold(
        "0.8", "below 80% hits the cache no longer takes most of the read load off the database"
    ),
    "cache_min_lookups_per_second": Threshold(
        "1", "with less than one lookup a second the ratio is noise (idle nights, fresh start)"
    ),
    "cache_hit_ratio_for": Threshold("15m", "the ratio dips after every deploy's cold start"),
    "cache_memory_ratio": Threshold(
        "0.9", "past 90% of maxmemory Redis starts evicting or refusing writes"
    ),
    "cache_memory_for": Threshold("10m", "memory moves with load; a plateau near max is the sign"),
    "cache_evictions_per_second": Threshold(
        "1", "an LRU cache evicts now and then by design; a steady stream means it is too small"
    ),
    "cache_evictions_for": Threshold("15m", "only a sustained stream, not one burst"),
    "cache_rejected_for": Threshold(
        "1m", "every rejected connection is an app request that failed (maxclients reached)"
    ),
    # --- model servers ------------------------------------------------------------------
    "model_server_down_for": Threshold(
        "2m", "model servers restart to load a model; two minutes covers a normal restart"
    ),
    "model_not_ready_for": Threshold(
        "5m", "loading a large model takes minutes; a server live but not ready longer is stuck"
    ),
    "model_latency_quantile": Threshold("0.95", "p95: what most users wait, not the outliers"),
    "model_latency_seconds": Threshold(
        "2", "a health probe answering slower than 2 s means the server is overloaded"
    ),
    "model_latency_for": Threshold("10m", "one slow batch is not a trend"),
    # --- task queue ---------------------------------------------------------------------
    "queue_down_for": Threshold("2m", "no broker: nothing is enqueued or processed"),
    "backlog_min_tasks": Threshold(
        "100", "a few waiting tasks are normal between worker polls; a hundred is a backlog"
    ),
    "backlog_growth_window": Threshold(
        "15m", "growth over a quarter of an hour is a trend, not a burst"
    ),
    "backlog_for": Threshold("15m", "bursts enqueue a lot at once and drain within minutes"),
    "oldest_task_seconds": Threshold(
        "900", "a task waiting fifteen minutes is late for anything a user is waiting on"
    ),
    "oldest_task_for": Threshold("5m", "workers pick tasks within seconds when they keep up"),
    "no_workers_for": Threshold(
        "5m", "workers restart on deploy; five minutes without one while tasks wait is an outage"
    ),
    "task_failure_ratio": Threshold(
        "0.1", "one task in ten failing is beyond retries and flaky inputs: something is broken"
    ),
    "task_failure_for": Threshold("15m", "a short burst of bad inputs fails a few tasks"),
    # --- host ---------------------------------------------------------------------------
    "host_cpu_ratio": Threshold(
        "0.9", "at 90% CPU over 15 minutes request latency climbs and the scrape itself slows"
    ),
    "host_cpu_for": Threshold("15m", "model inference and batch jobs peak for minutes"),
    "host_memory_percent": Threshold(
        "90", "past 90% the page cache is gone and the OOM killer is near"
    ),
    "host_memory_for": Threshold("15m", "memory peaks during model loads settle within minutes"),
    "host_disk_free_ratio": Threshold(
        "0.1", "under 10% free, databases and logs fill the rest faster than people react"
    ),
    "host_disk_for": Threshold("15m", "log rotation frees space again within minutes"),
    # --- API (embedded mode) ------------------------------------------------------------
    "api_error_ratio": Threshold(
        "0.05", "more than one request in twenty answering 5xx is visible to every user"
    ),
    "api_error_for": Threshold("10m", "a deploy may fail a handful of requests"),
    "api_latency_seconds": Threshold(
        "1", "p95 over a second: the app's interactive pages feel broken"
    ),
    "api_latency_for": Threshold("10m", "one slow minute is a burst, ten a trend"),
}


def t(name: str) -> str:
    """A threshold's value as it goes into an expression or a `for`."""
    return THRESHOLDS[name].value


def s(extra: str = "") -> str:
    """The selector, with extra matchers."""
    return "{" + SELECTOR + (", " + extra if extra else "") + "}"


FAILED = 'status="failure"'
IDLE = 'mode=~"idle|iowait"'
NOT_GUEST = 'mode!~"guest|guest_nice"'  # guest time is already counted in user time
SERVER_ERROR = 'status=~"5.."'
WORKER_KINDS = 'kind=~"celery-.*|rq"'
LOOKUP = 'operation="lookup"'
LOOKUP_HIT = 'operation="lookup", result="hit"'


@dataclass(frozen=True)
class Record:
    record: str
    expr: str


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_URL}#{self.name.lower()}"


# Recording rules: the ratios and quantiles the dashboards and the alerts share.
RECORDS: dict[str, list[Record]] = {
    "afirgen.database.rules": [
        Record(
            "job_database:db_connection_pool_checked_out:ratio",
            f"db_connection_pool_checked_out{s()}\n/ on (job, instance, database)\n"
            f"(db_connection_pool_size{s()} > 0)",
        ),
        Record(
            "job_database:db_connections:ratio",
            f"sum by (job, instance, database) (db_connections{s()})\n"
            f"/ on (job, instance, database)\n(db_connections_max{s()} > 0)",
        ),
    ],
    "afirgen.cache.rules": [
        Record(
            "job_instance:cache_lookups:rate5m",
            f"sum by (job, instance) (rate(cache_operations_total{s(LOOKUP)}[5m]))",
        ),
        Record(
            "job_instance:cache_hit:ratio_rate5m",
            f"sum by (job, instance) (rate(cache_operations_total{s(LOOKUP_HIT)}[5m]))\n"
            "/ (job_instance:cache_lookups:rate5m > 0)",
        ),
        Record(
            "job_instance:cache_memory_usage:ratio",
            f"cache_memory_usage_bytes{s()}\n/ on (job, instance)\n"
            f"(redis_memory_max_bytes{s()} > 0)",
        ),
    ],
    "afirgen.model_servers.rules": [
        Record(
            "job_server:model_server_latency_seconds:p95_rate5m",
            f"histogram_quantile({t('model_latency_quantile')},\n"
            "  sum by (job, instance, server, le) "
            f"(rate(model_server_latency_seconds_bucket{s()}[5m])))",
        ),
    ],
    "afirgen.task_queue.rules": [
        Record(
            "job_queue:background_tasks_queued:sum",
            f"sum by (job, instance, backend, queue) (background_tasks_queued{s()})",
        ),
        Record(
            "job_backend:background_tasks_failed:ratio_rate15m",
            "sum by (job, instance, backend) "
            f"(rate(background_tasks_processed_total{s(FAILED)}[15m]))\n"
            "/ (sum by (job, instance, backend) "
            f"(rate(background_tasks_processed_total{s()}[15m])) > 0)",
        ),
    ],
    "afirgen.host.rules": [
        Record(
            "job_instance:system_cpu_utilisation:rate5m",
            "1 - (\n"
            "  sum by (job, instance) "
            f"(rate(system_cpu_seconds_total{s(IDLE)}[5m]))\n"
            "  / (sum by (job, instance) "
            f"(rate(system_cpu_seconds_total{s(NOT_GUEST)}[5m])) > 0)\n"
            ")",
        ),
        Record(
            "job_instance_mountpoint:system_filesystem_avail:ratio",
            f"system_filesystem_avail_bytes{s()}\n/ (system_filesystem_size_bytes{s()} > 0)",
        ),
    ],
    "afirgen.api.rules": [
        Record(
            "job_endpoint:api_requests_errors:ratio_rate5m",
            "sum by (job, instance, endpoint) "
            f"(rate(api_requests_total{s(SERVER_ERROR)}[5m]))\n"
            "/ (sum by (job, instance, endpoint) "
            f"(rate(api_requests_total{s()}[5m])) > 0)",
        ),
        Record(
            "job_endpoint:api_request_duration_seconds:p95_rate5m",
            "histogram_quantile(0.95,\n"
            "  sum by (job, instance, endpoint, le) "
            f"(rate(api_request_duration_seconds_bucket{s()}[5m])))",
        ),
    ],
}

ALERTS: dict[str, list[Alert]] = {
    "afirgen.exporter.alerts": [
        Alert(
            "AfirgenExporterDown",
            f"up{s()} == 0",
            t("exporter_down_for"),
            "critical",
            "Prometheus cannot scrape the afirgen exporter.",
            "Scrapes of {{ $labels.instance }} (job {{ $labels.job }}) have failed for "
            f"{t('exporter_down_for')}: no metric of the backend is being collected.",
        ),
        Alert(
            "AfirgenCollectorFailing",
            f"afirgen_exporter_collector_success{s()} == 0",
            t("collector_failing_for"),
            "warning",
            "An exporter collector keeps failing.",
            "The {{ $labels.collector }} collector for target {{ $labels.target }} on "
            "{{ $labels.instance }} has failed every scrape for "
            f"{t('collector_failing_for')}; the exporter log says why.",
        ),
        Alert(
            "AfirgenExporterConfigReloadFailed",
            f"afirgen_exporter_config_last_reload_successful{s()} == 0",
            t("reload_failed_for"),
            "warning",
            "The exporter refused its new config.",
            "The last config reload of {{ $labels.instance }} failed; it keeps serving the "
            "previous config.",
        ),
        Alert(
            "AfirgenExporterSeriesDropped",
            f"afirgen_exporter_series_dropped{s()} > 0",
            t("series_dropped_for"),
            "info",
            "A label budget folds series into 'other'.",
            "The {{ $labels.collector }} collector for {{ $labels.target }} on "
            "{{ $labels.instance }} drops {{ $value }} series per scrape to its label budget.",
        ),
    ],
    "afirgen.database.alerts": [
        Alert(
            "AfirgenDatabaseDown",
            f"db_up{s()} == 0",
            t("database_down_for"),
            "critical",
            "A database cannot be reached.",
            "Database {{ $labels.database }} (exporter {{ $labels.instance }}) has not "
            f"answered for {t('database_down_for')}.",
        ),
        Alert(
            "AfirgenDatabasePoolSaturated",
            f"job_database:db_connection_pool_checked_out:ratio > {t('pool_saturation_ratio')}",
            t("pool_saturation_for"),
            "warning",
            "The SQLAlchemy pool is nearly exhausted.",
            "{{ $value | humanizePercentage }} of the connection pool of database "
            "{{ $labels.database }} on {{ $labels.instance }} is checked out; requests wait "
            "for a connection.",
        ),
        Alert(
            "AfirgenDatabaseConnectionsNearMax",
            f"job_database:db_connections:ratio > {t('connections_near_max_ratio')}",
            t("connections_near_max_for"),
            "warning",
            "The database server is close to its connection limit.",
            "Database {{ $labels.database }} uses {{ $value | humanizePercentage }} of its "
            "max_connections.",
        ),
        Alert(
            "AfirgenDatabaseDeadlocks",
            f"increase(db_deadlocks_total{s()}[{t('deadlock_window')}]) > 0",
            t("deadlock_for"),
            "warning",
            "The database detected deadlocks.",
            "Database {{ $labels.database }} counted {{ $value | humanize }} deadlocks in the "
            f"last {t('deadlock_window')}.",
        ),
        Alert(
            "AfirgenDatabaseLongTransaction",
            f"db_longest_transaction_seconds{s()} > {t('long_transaction_seconds')}",
            t("long_transaction_for"),
            "warning",
            "A database transaction has been open for a long time.",
            "The oldest open transaction on database {{ $labels.database }} is "
            "{{ $value | humanizeDuration }} old.",
        ),
    ],
    "afirgen.cache.alerts": [
        Alert(
            "AfirgenCacheDown",
            f"cache_up{s()} == 0",
            t("cache_down_for"),
            "critical",
            "A Redis cache cannot be reached.",
            "Redis {{ $labels.instance }} (job {{ $labels.job }}) has not answered for "
            f"{t('cache_down_for')}.",
        ),
        Alert(
            "AfirgenCacheHitRatioLow",
            f"job_instance:cache_hit:ratio_rate5m < {t('cache_hit_ratio_min')}\n"
            "and on (job, instance)\n"
            f"job_instance:cache_lookups:rate5m > {t('cache_min_lookups_per_second')}",
            t("cache_hit_ratio_for"),
            "warning",
            "The cache hit ratio is low.",
            "Only {{ $value | humanizePercentage }} of key lookups on Redis "
            "{{ $labels.instance }} hit.",
        ),
        Alert(
            "AfirgenCacheMemoryNearMax",
            f"job_instance:cache_memory_usage:ratio > {t('cache_memory_ratio')}",
            t("cache_memory_for"),
            "warning",
            "Redis memory is close to maxmemory.",
            "Redis {{ $labels.instance }} uses {{ $value | humanizePercentage }} of its maxmemory.",
        ),
        Alert(
            "AfirgenCacheEvicting",
            f"rate(cache_evictions_total{s()}[5m]) > {t('cache_evictions_per_second')}",
            t("cache_evictions_for"),
            "warning",
            "Redis keeps evicting keys.",
            "Redis {{ $labels.instance }} evicts {{ $value | humanize }} keys per second.",
        ),
        Alert(
            "AfirgenCacheRejectedConnections",
            f"increase(redis_rejected_connections_total{s()}[5m]) > 0",
            t("cache_rejected_for"),
            "warning",
            "Redis rejects connections.",
            "Redis {{ $labels.instance }} rejected {{ $value | humanize }} connections in the "
            "last 5 minutes (maxclients reached).",
        ),
    ],
    "afirgen.model_servers.alerts": [
        Alert(
            "AfirgenModelServerDown",
            f"model_server_up{s()} == 0",
            t("model_server_down_for"),
            "critical",
            "A model server is down.",
            "Model server {{ $labels.server }} (exporter {{ $labels.instance }}) has failed "
            f"its liveness probe for {t('model_server_down_for')}.",
        ),
        Alert(
            "AfirgenModelServerNotReady",
            f"model_server_availability{s()} == 0\n"
            f"and on (job, instance, server)\nmodel_server_up{s()} == 1",
            t("model_not_ready_for"),
            "warning",
            "A model server is live but not ready.",
            "Model server {{ $labels.server }} answers but has not been ready for "
            f"{t('model_not_ready_for')}.",
        ),
        Alert(
            "AfirgenModelNotReady",
            f"model_server_model_ready{s()} == 0",
            t("model_not_ready_for"),
            "warning",
            "A model is not ready.",
            "Model {{ $labels.model }} on server {{ $labels.server }} has not been ready for "
            f"{t('model_not_ready_for')}.",
        ),
        Alert(
            "AfirgenModelServerLatencyHigh",
            f"job_server:model_server_latency_seconds:p95_rate5m > {t('model_latency_seconds')}",
            t("model_latency_for"),
            "warning",
            "A model server answers slowly.",
            "p95 probe latency of model server {{ $labels.server }} is "
            "{{ $value | humanizeDuration }}.",
        ),
    ],
    "afirgen.task_queue.alerts": [
        Alert(
            "AfirgenTaskQueueDown",
            f"background_tasks_up{s()} == 0",
            t("queue_down_for"),
            "critical",
            "A task queue broker cannot be reached.",
            "Task queue {{ $labels.backend }} on {{ $labels.instance }} has not answered for "
            f"{t('queue_down_for')}.",
        ),
        Alert(
            "AfirgenTaskBacklogGrowing",
            f"job_queue:background_tasks_queued:sum > {t('backlog_min_tasks')}\n"
            "and on (job, instance, backend, queue)\n"
            f"delta(job_queue:background_tasks_queued:sum[{t('backlog_growth_window')}]) > 0",
            t("backlog_for"),
            "warning",
            "A task queue backlog keeps growing.",
            "Queue {{ $labels.queue }} of {{ $labels.backend }} holds {{ $value | humanize }} "
            "waiting tasks and grew "
            f"over the last {t('backlog_growth_window')}.",
        ),
        Alert(
            "AfirgenTaskOldestTooOld",
            f"background_tasks_oldest_waiting_age_seconds{s()} > {t('oldest_task_seconds')}",
            t("oldest_task_for"),
            "warning",
            "The oldest waiting task is too old.",
            "The oldest task in queue {{ $labels.queue }} of {{ $labels.backend }} has waited "
            "{{ $value | humanizeDuration }}.",
        ),
        Alert(
            "AfirgenTaskQueueNoWorkers",
            f"sum by (job, instance, backend) (background_tasks_queued{s()}) > 0\n"
            # only backends that report workers (celery-redis, celery-amqp, rq) can say none are
            f"and on (job, instance, backend) background_tasks_up{s(WORKER_KINDS)}\n"
            "unless on (job, instance, backend)\n"
            f"sum by (job, instance, backend) (background_tasks_workers{s()}) > 0",
            t("no_workers_for"),
            "critical",
            "Tasks are waiting and no worker is online.",
            "{{ $value | humanize }} tasks wait in {{ $labels.backend }} on "
            f"{{{{ $labels.instance }}}} and no worker has been online for {t('no_workers_for')}.",
        ),
        Alert(
            "AfirgenTaskFailureRatioHigh",
            f"job_backend:background_tasks_failed:ratio_rate15m > {t('task_failure_ratio')}",
            t("task_failure_for"),
            "warning",
            "Many background tasks fail.",
            "{{ $value | humanizePercentage }} of the tasks of {{ $labels.backend }} on "
            "{{ $labels.instance }} failed over the last 15 minutes.",
        ),
    ],
    "afirgen.host.alerts": [
        Alert(
            "AfirgenHostCpuHigh",
            f"job_instance:system_cpu_utilisation:rate5m > {t('host_cpu_ratio')}",
            t("host_cpu_for"),
            "warning",
            "The host's CPU is saturated.",
            "CPU of {{ $labels.instance }} is {{ $value | humanizePercentage }} busy.",
        ),
        Alert(
            "AfirgenHostMemoryHigh",
            f"system_memory_percent{s()} > {t('host_memory_percent')}",
            t("host_memory_for"),
            "warning",
            "The host is running out of memory.",
            "{{ $labels.instance }} uses {{ $value | humanize }}% of its memory.",
        ),
        Alert(
            "AfirgenHostDiskSpaceLow",
            f"job_instance_mountpoint:system_filesystem_avail:ratio < {t('host_disk_free_ratio')}",
            t("host_disk_for"),
            "warning",
            "A filesystem is almost full.",
            "Only {{ $value | humanizePercentage }} of {{ $labels.mountpoint }} on "
            "{{ $labels.instance }} is free.",
        ),
    ],
    "afirgen.api.alerts": [
        Alert(
            "AfirgenApiErrorRatioHigh",
            f"job_endpoint:api_requests_errors:ratio_rate5m > {t('api_error_ratio')}",
            t("api_error_for"),
            "critical",
            "An API endpoint answers many server errors.",
            "{{ $value | humanizePercentage }} of requests to {{ $labels.endpoint }} on "
            "{{ $labels.instance }} answer 5xx.",
        ),
        Alert(
            "AfirgenApiLatencyHigh",
            f"job_endpoint:api_request_duration_seconds:p95_rate5m > {t('api_latency_seconds')}",
            t("api_latency_for"),
            "warning",
            "An API endpoint is slow.",
            "p95 latency of {{ $labels.endpoint }} on {{ $labels.instance }} is "
            "{{ $value | humanizeDuration }}.",
        ),
    ],
}


def all_alerts() -> list[Alert]:
    return [alert for group in ALERTS.values() for alert in group]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so expressions read as they were written."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = "# Generated by alerts/build.py from its THRESHOLDS table: edit there, then run\n"
HEADER += "# `python -m alerts.build`. Thresholds and the reason for each are in that file.\n"


def _dump(data: dict[str, Any]) -> str:
    return HEADER + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=10_000)


def recording_rules() -> dict[str, Any]:
    return {
        "groups": [
            {"name": name, "rules": [{"record": r.record, "expr": r.expr} for r in records]}
            for name, records in RECORDS.items()
        ]
    }


def alerting_rules() -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": name,
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": a.for_,
                        "labels": {"severity": a.severity},
                        "annotations": {
                            "summary": a.summary,
                            "description": a.description,
                            "runbook_url": a.runbook_url,
                        },
                    }
                    for a in alerts
                ],
            }
            for name, alerts in ALERTS.items()
        ]
    }


def render() -> dict[Path, str]:
    """Every generated file and its content."""
    return {
        HERE / "afirgen.rules.yml": _dump(recording_rules()),
        HERE / "afirgen.alerts.yml": _dump(alerting_rules()),
    }


def write_or_check(files: dict[Path, str], command: str, argv: list[str] | None) -> int:
    """Write generated files, or with --check fail when a committed one is stale.

    Shared by the rule and dashboard generators.
    """
    parser = argparse.ArgumentParser(description=f"Generate files ({command}).")
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in files.items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale, run {command}: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return write_or_check(render(), "python -m alerts.build", argv)


if __name__ == "__main__":
    sys.exit(main())
