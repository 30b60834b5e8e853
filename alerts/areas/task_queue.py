"""The task queue: broker reachability, backlog, oldest waiting task, workers, failures,
queue wait, and the exporter's Celery event receiver."""

from __future__ import annotations

from alerts.rules import Alert, Area, Record, selector
from alerts.thresholds import (
    BACKLOG_FOR,
    BACKLOG_GROWTH_WINDOW,
    BACKLOG_MIN_TASKS,
    NO_WORKERS_FOR,
    OLDEST_TASK_FOR,
    OLDEST_TASK_SECONDS,
    QUEUE_DOWN_FOR,
    TASK_EVENTS_DOWN_FOR,
    TASK_FAILURE_FOR,
    TASK_FAILURE_RATIO,
    TASK_WAIT_FOR,
    TASK_WAIT_QUANTILE,
    TASK_WAIT_SECONDS,
)

FAILED = 'status="failure"'
#: Runs that ended: the denominator of the failure ratio (retries, rejects, revokes and
#: inspect's `accepted` are not outcomes of a finished run)
FINISHED = 'status=~"success|failure"'
WORKER_KINDS = 'kind=~"celery-.*|rq"'

AREA = Area(
    "task_queue",
    records=(
        Record(
            "job_queue:background_tasks_queued:sum",
            f"sum by (job, instance, backend, queue) (background_tasks_queued{selector()})",
        ),
        Record(
            "job_backend:background_tasks_failed:ratio_rate15m",
            "sum by (job, instance, backend) "
            f"(rate(background_tasks_processed_total{selector(FAILED)}[15m]))\n"
            "/ (sum by (job, instance, backend) "
            f"(rate(background_tasks_processed_total{selector(FINISHED)}[15m])) > 0)",
        ),
        Record(
            "job_backend:background_task_queue_wait_seconds:p95_rate15m",
            f"histogram_quantile({TASK_WAIT_QUANTILE}, sum by (job, instance, backend, le) "
            f"(rate(background_task_queue_wait_seconds_bucket{selector()}[15m])))",
        ),
    ),
    alerts=(
        Alert(
            "AfirgenTaskQueueDown",
            f"background_tasks_up{selector()} == 0",
            QUEUE_DOWN_FOR,
            "critical",
            "A task queue broker cannot be reached.",
            "Task queue {{ $labels.backend }} on {{ $labels.instance }} has not answered for "
            f"{QUEUE_DOWN_FOR}.",
        ),
        Alert(
            "AfirgenTaskBacklogGrowing",
            f"job_queue:background_tasks_queued:sum > {BACKLOG_MIN_TASKS}\n"
            "and on (job, instance, backend, queue)\n"
            f"delta(job_queue:background_tasks_queued:sum[{BACKLOG_GROWTH_WINDOW}]) > 0",
            BACKLOG_FOR,
            "warning",
            "A task queue backlog keeps growing.",
            "Queue {{ $labels.queue }} of {{ $labels.backend }} holds {{ $value | humanize }} "
            "waiting tasks and grew "
            f"over the last {BACKLOG_GROWTH_WINDOW}.",
        ),
        Alert(
            "AfirgenTaskOldestTooOld",
            f"background_tasks_oldest_waiting_age_seconds{selector()} > {OLDEST_TASK_SECONDS}",
            OLDEST_TASK_FOR,
            "warning",
            "The oldest waiting task is too old.",
            "The oldest task in queue {{ $labels.queue }} of {{ $labels.backend }} has waited "
            "{{ $value | humanizeDuration }}.",
        ),
        Alert(
            "AfirgenTaskQueueNoWorkers",
            f"sum by (job, instance, backend) (background_tasks_queued{selector()}) > 0\n"
            # only backends that report workers (celery-redis, celery-amqp, rq) can say none are
            f"and on (job, instance, backend) background_tasks_up{selector(WORKER_KINDS)}\n"
            "unless on (job, instance, backend)\n"
            f"sum by (job, instance, backend) (background_tasks_workers{selector()}) > 0",
            NO_WORKERS_FOR,
            "critical",
            "Tasks are waiting and no worker is online.",
            "{{ $value | humanize }} tasks wait in {{ $labels.backend }} on "
            f"{{{{ $labels.instance }}}} and no worker has been online for {NO_WORKERS_FOR}.",
        ),
        Alert(
            "AfirgenTaskFailureRatioHigh",
            f"job_backend:background_tasks_failed:ratio_rate15m > {TASK_FAILURE_RATIO}",
            TASK_FAILURE_FOR,
            "warning",
            "Many background tasks fail.",
            "{{ $value | humanizePercentage }} of the tasks of {{ $labels.backend }} on "
            "{{ $labels.instance }} failed over the last 15 minutes.",
        ),
        Alert(
            "AfirgenTaskQueueWaitHigh",
            f"job_backend:background_task_queue_wait_seconds:p95_rate15m > {TASK_WAIT_SECONDS}",
            TASK_WAIT_FOR,
            "warning",
            "Tasks wait long before a worker starts them.",
            "p95 of the time tasks of {{ $labels.backend }} on {{ $labels.instance }} waited "
            "for a worker is {{ $value | humanizeDuration }} over the last 15 minutes.",
        ),
        Alert(
            "AfirgenTaskEventsDisconnected",
            f"background_task_events_connected{selector()} == 0",
            TASK_EVENTS_DOWN_FOR,
            "warning",
            "The exporter does not receive Celery's task events.",
            "The event receiver of {{ $labels.backend }} on {{ $labels.instance }} has not "
            f"been connected for {TASK_EVENTS_DOWN_FOR}: task outcomes are not counted.",
        ),
    ),
)
