"""A Celery app for the task-queue tests: real workers import it (`celery -A tests.tq_celery_app`).

The broker comes from `AFX_TQ_CELERY_BROKER` (a private redis-server or the shared RabbitMQ:
there is no default, so a worker never lands on the machine's shared Redis), and the control
and event exchanges from `AFX_TQ_CONTROL_EXCHANGE` / `AFX_TQ_EVENT_EXCHANGE`, unique per test
run, so a broadcast never reaches another run's workers.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "afx_tq",
    broker=os.environ["AFX_TQ_CELERY_BROKER"],
    set_as_current=False,
)
app.conf.update(
    task_default_queue="afx_tq_default",
    broker_transport_options={"priority_steps": [0, 3, 6, 9], "sep": "\x06\x16"},
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_acks_late=False,
    worker_prefetch_multiplier=1,
    # keep the broker objects Celery makes under the tests' own afx_tq_ names
    control_exchange=os.environ.get("AFX_TQ_CONTROL_EXCHANGE", "afx_tq_ctl"),
    event_exchange=os.environ.get("AFX_TQ_EVENT_EXCHANGE", "afx_tq_ev"),
)


@app.task(name="afx_tq.ok")
def ok(x: int) -> int:
    return x * 2


@app.task(name="afx_tq.boom")
def boom() -> None:
    raise RuntimeError("this task fails on purpose")
