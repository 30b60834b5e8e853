"""The Task queue dashboard: backlog per queue and priority, workers, outcomes, run time and
queue wait."""

from __future__ import annotations

from alerts.thresholds import OLDEST_TASK_SECONDS, TASK_WAIT_SECONDS
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

QUEUE = f'{TARGET}, queue=~"$queue"'

BOARD = Board(
    "afirgen-task-queue",
    "afirgen / Task queue",
    "Background work read from the broker at scrape time: waiting tasks per queue and "
    "priority, in progress, age of the oldest, workers, outcomes.",
    [
        job_variable(),
        instance_variable("background_tasks_up"),
        area_variable("queue", "Queue", "background_tasks_queued"),
    ],
    [
        Row(
            "Backlog",
            [
                stat_panel(
                    "Broker up",
                    "1 when the exporter could read the broker in the last scrape.",
                    "none",
                    query(f"background_tasks_up{{{TARGET}}}", "{{backend}}"),
                    updown=True,
                ),
                stat_panel(
                    "Waiting tasks",
                    "Tasks waiting in the selected queues.",
                    "short",
                    query(f"sum(background_tasks_queued{{{QUEUE}}})"),
                ),
                stat_panel(
                    "Workers",
                    "Workers online (Celery: whose heartbeats arrive).",
                    "short",
                    query(f"sum(background_tasks_workers{{{TARGET}}}) or vector(0)"),
                    steps=red_below(1),
                ),
                stat_panel(
                    "Oldest waiting task",
                    "Age of the oldest task waiting in the selected queues.",
                    "s",
                    query(f"max(background_tasks_oldest_waiting_age_seconds{{{QUEUE}}})"),
                    steps=red_above(OLDEST_TASK_SECONDS),
                ),
                timeseries_panel(
                    "Waiting tasks by queue and priority",
                    "Tasks waiting per queue and priority.",
                    "short",
                    query(
                        f"background_tasks_queued{{{QUEUE}}}",
                        "{{backend}} {{queue}} {{priority}}",
                    ),
                ),
                timeseries_panel(
                    "In progress",
                    "Tasks taken by a worker and not finished.",
                    "short",
                    query(f"background_tasks_in_progress{{{QUEUE}}}", "{{queue}}"),
                ),
                timeseries_panel(
                    "Oldest waiting task",
                    "How long the oldest waiting task has waited, per queue.",
                    "s",
                    query(f"background_tasks_oldest_waiting_age_seconds{{{QUEUE}}}", "{{queue}}"),
                ),
                timeseries_panel(
                    "Workers",
                    "Workers seen by the broker, by state (Celery and RQ).",
                    "short",
                    query(f"background_tasks_workers{{{TARGET}}}", "{{backend}} {{state}}"),
                ),
                timeseries_panel(
                    "Consumers",
                    "Consumers attached to each queue (RabbitMQ).",
                    "short",
                    query(f"background_tasks_queue_consumers{{{QUEUE}}}", "{{backend}} {{queue}}"),
                ),
                timeseries_panel(
                    "RQ registries",
                    "Live entries of RQ's job registries per queue: started, finished, "
                    "failed, deferred, scheduled, canceled.",
                    "short",
                    query(
                        f"background_tasks_registry{{{QUEUE}}}",
                        "{{backend}} {{queue}} {{registry}}",
                    ),
                ),
            ],
        ),
        Row(
            "Outcomes",
            [
                timeseries_panel(
                    "Outcomes per second",
                    "Tasks per second by outcome: success, failure, retry, rejected, revoked "
                    "(Celery task events, RQ registries; counted by the exporter, never reset "
                    "by workers leaving).",
                    "ops",
                    query(
                        f"sum by (backend, status) "
                        f"(rate(background_tasks_processed_total{{{TARGET}}}[{RATE}]))",
                        "{{backend}} {{status}}",
                    ),
                ),
                timeseries_panel(
                    "Failure ratio (15m)",
                    "Failed runs over finished runs (success + failure; recording rule the "
                    "alert uses).",
                    "percentunit",
                    query(
                        f"job_backend:background_tasks_failed:ratio_rate15m{{{TARGET}}}",
                        "{{backend}}",
                    ),
                    max=1,
                ),
                timeseries_panel(
                    "Failures per second by task",
                    "Failed runs per second, per task type.",
                    "ops",
                    query(
                        f"sum by (backend, type) (rate(background_tasks_processed_total"
                        f'{{{TARGET}, status="failure"}}[{RATE}]))',
                        "{{backend}} {{type}}",
                    ),
                ),
                timeseries_panel(
                    "Run time p95 by task",
                    "95th percentile of the run time of tasks that succeeded or failed.",
                    "s",
                    query(
                        "histogram_quantile(0.95, sum by (backend, type, le) "
                        f"(rate(background_task_duration_seconds_bucket{{{TARGET}}}[{RATE}])))",
                        "{{backend}} {{type}}",
                    ),
                ),
                timeseries_panel(
                    "Queue wait p95 by task",
                    "95th percentile of the time tasks waited before a worker started them "
                    f"(the alert fires above {TASK_WAIT_SECONDS} s).",
                    "s",
                    query(
                        "histogram_quantile(0.95, sum by (backend, type, le) "
                        f"(rate(background_task_queue_wait_seconds_bucket{{{TARGET}}}[{RATE}])))",
                        "{{backend}} {{type}}",
                    ),
                ),
                timeseries_panel(
                    "Mean run time",
                    "Run time over finished tasks.",
                    "s",
                    query(
                        f"sum by (backend, type) "
                        f"(rate(background_task_duration_seconds_sum{{{TARGET}}}[{RATE}]))\n"
                        f"/ sum by (backend, type) "
                        f"(rate(background_task_duration_seconds_count{{{TARGET}}}[{RATE}]))",
                        "{{backend}} {{type}}",
                    ),
                ),
                timeseries_panel(
                    "Event receiver connected",
                    "1 while the exporter's own receiver of Celery's task events is connected.",
                    "none",
                    query(f"background_task_events_connected{{{TARGET}}}", "{{backend}}"),
                ),
            ],
        ),
    ],
)
