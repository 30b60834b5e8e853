"""The Task queue dashboard: backlog per queue and priority, workers, outcomes."""

from __future__ import annotations

from alerts.thresholds import OLDEST_TASK_SECONDS
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
                    "Workers online.",
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
                    "Processed per second",
                    "Tasks finished per second by outcome, where the backend keeps totals.",
                    "ops",
                    query(
                        f"sum by (backend, status) "
                        f"(rate(background_tasks_processed_total{{{TARGET}}}[{RATE}]))",
                        "{{backend}} {{status}}",
                    ),
                ),
                timeseries_panel(
                    "Failure ratio (15m)",
                    "Failed tasks over all finished tasks (recording rule the alert uses).",
                    "percentunit",
                    query(
                        f"job_backend:background_tasks_failed:ratio_rate15m{{{TARGET}}}",
                        "{{backend}}",
                    ),
                    max=1,
                ),
                timeseries_panel(
                    "Mean task duration",
                    "Working time over finished tasks, where the backend keeps it.",
                    "s",
                    query(
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
