"""A Celery app for the task-queue tests: real workers import it (`celery -A tests.tq_celery_app`).

The broker comes from `AFX_TQ_CELERY_BROKER` (a private redis-server or the shared RabbitMQ:
there is no default, so a worker never lands on the machine's shared Redis), and the control
and event exchanges from `AFX_TQ_CONTROL_EXCHANGE` / `AFX_TQ_EVENT_EXCHANGE`, unique per test
run, so a broadcast never reaches another run's workers.
"""

from __future__ import annotations

import os
import time

from celery import Celery
from celery.exceptions import Reject

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
    # retries are sent by the worker: their task-sent events start the next queue wait
    task_send_sent_event=True,
)


@app.task(name="afx_tq.ok")
def ok(x: int) -> int:
    return x * 2


@app.task(name="afx_tq.boom")
def boom() -> None:
    raise RuntimeError("this task fails on purpose")


@app.task(name="afx_tq.nap")
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="afx_tq.flaky", bind=True, max_retries=1)
def flaky(self) -> str:
    """Fails its first run and is retried at once; the second run succeeds."""
    if not self.request.retries:
        raise self.retry(countdown=0)
    return "second time lucky"


@app.task(name="afx_tq.refuse", acks_late=True)  # a message is rejected before its ack
def refuse() -> None:
    raise Reject("refused on purpose", requeue=False)
