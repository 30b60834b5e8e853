"""collectors/task_queue.py on Celery's Redis transport: depths per queue and priority step
(default and custom steps), and a real Celery worker as a subprocess whose tasks `inspect`
counts. The broker is this module's private redis-server (dbs 8 and 9, emptied per test)."""

from __future__ import annotations

from tests.tq_support import (
    CONTROL_EXCHANGE,
    EVENT_EXCHANGE,
    scrape,
    target_from,
    wait_for_value,
    worker_process,
)

CELERY_DB, CELERY_WORKER_DB = 8, 9


def celery_app(broker: str, **transport_options):
    from celery import Celery

    app = Celery("afx_tq_sender", broker=broker, set_as_current=False)
    if transport_options:
        app.conf.broker_transport_options = transport_options
    return app


# -- Celery on Redis -----------------------------------------------------------------------


def test_celery_depths_per_queue_and_priority_step(make_queue_collector, redis_db, broker_db_url):
    redis_db(CELERY_DB)
    app = celery_app(broker_db_url(CELERY_DB))
    sent = {("afx_tq_a", 0): 3, ("afx_tq_a", 4): 2, ("afx_tq_a", 9): 1, ("afx_tq_b", 7): 4}
    for (queue, priority), count in sent.items():
        for i in range(count):
            app.send_task("afx_tq.ok", args=[i], queue=queue, priority=priority)
    collector = make_queue_collector(
        target_from({"name": "c", "kind": "celery", "url": broker_db_url(CELERY_DB)})
    )
    got = scrape(collector)
    assert got.success
    # default steps 0, 3, 6, 9: priority 4 lands in step 3, 7 in step 6
    expected = {
        ("afx_tq_a", "0"): 3,
        ("afx_tq_a", "3"): 2,
        ("afx_tq_a", "6"): 0,
        ("afx_tq_a", "9"): 1,
        ("afx_tq_b", "0"): 0,
        ("afx_tq_b", "6"): 4,
    }
    for (queue, step), count in expected.items():
        assert (
            got.value("background_tasks_queued", backend="c", queue=queue, priority=step) == count
        )
    assert got.labels("background_tasks_queued", "queue") == {"afx_tq_a", "afx_tq_b"}
    assert got.value("background_tasks_workers", backend="c", state="online") == 0
    assert got.value("background_tasks_up", backend="c", kind="celery-redis") == 1
    app.close()


def test_celery_custom_priority_steps_and_separator_and_missing_queue(
    make_queue_collector, redis_db, broker_db_url
):
    client = redis_db(CELERY_DB)
    app = celery_app(broker_db_url(CELERY_DB), priority_steps=[0, 5], sep=":")
    for priority, count in ((1, 2), (5, 3), (8, 1)):
        for i in range(count):
            app.send_task("afx_tq.ok", args=[i], queue="afx_tq_c", priority=priority)
    assert client.llen("afx_tq_c:5") == 4  # the layout the collector must follow
    target = target_from(
        {
            "name": "c",
            "kind": "celery",
            "url": broker_db_url(CELERY_DB),
            "priority_steps": [0, 5],
            "sep": ":",
            "queues": ["afx_tq_c", "afx_tq_never_used"],
        }
    )
    got = scrape(make_queue_collector(target))
    assert got.value("background_tasks_queued", backend="c", queue="afx_tq_c", priority="0") == 2
    assert got.value("background_tasks_queued", backend="c", queue="afx_tq_c", priority="5") == 4
    for step in ("0", "5"):
        assert (
            got.value(
                "background_tasks_queued", backend="c", queue="afx_tq_never_used", priority=step
            )
            == 0
        )
    app.close()


def test_celery_worker_runs_tasks_and_inspect_counts_them(
    make_queue_collector, redis_db, broker_db_url
):
    redis_db(CELERY_WORKER_DB)
    url = broker_db_url(CELERY_WORKER_DB)
    target = target_from(
        {
            "name": "w",
            "kind": "celery",
            "url": url,
            "queues": ["afx_tq_work"],
            "control_exchange": CONTROL_EXCHANGE,
            "event_exchange": EVENT_EXCHANGE,
            "inspect": True,
            "inspect_timeout_seconds": 3,
        }
    )
    collector = make_queue_collector(target)
    worker = [
        "celery",
        "-A",
        "tests.tq_celery_app",
        "worker",
        "-Q",
        "afx_tq_work",
        "-P",
        "solo",
        "-n",
        "afx_tq_worker@%h",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "warning",
    ]
    with worker_process(worker, env={"AFX_TQ_CELERY_BROKER": url}):
        wait_for_value(
            collector,
            "background_tasks_workers",
            1,
            "the Celery worker online",
            backend="w",
            state="online",
        )
        app = celery_app(url)
        for i in range(4):
            app.send_task("afx_tq.ok", args=[i], queue="afx_tq_work", priority=i * 3)
        for _ in range(2):
            app.send_task("afx_tq.boom", queue="afx_tq_work")
        wait_for_value(
            collector,
            "background_tasks_processed_total",
            2,
            "failing tasks counted",
            backend="w",
            type="afx_tq.boom",
            status="accepted",
        )
        wait_for_value(
            collector,
            "background_tasks_processed_total",
            4,
            "good tasks counted",
            backend="w",
            type="afx_tq.ok",
            status="accepted",
        )
        got = scrape(collector)
        for step in ("0", "3", "6", "9"):
            assert (
                got.value(
                    "background_tasks_queued", backend="w", queue="afx_tq_work", priority=step
                )
                == 0
            )
        wait_for_value(
            collector,
            "background_tasks_in_progress",
            0,
            "no unacked task left",
            backend="w",
            queue="afx_tq_work",
        )
        app.close()
    # a worker that shuts down cleanly removes its pidbox binding
    wait_for_value(
        collector, "background_tasks_workers", 0, "the worker gone", backend="w", state="online"
    )
    collector.close()
