"""collectors/task_queue.py on RQ: depths, registries and the oldest job's age (time pinned),
and a real RQ worker as a subprocess whose outcomes are counted. The broker is this module's
private redis-server (dbs 10 and 11, emptied per test)."""

from __future__ import annotations

import datetime as dt

from freezegun import freeze_time

from tests.tq_support import (
    scrape,
    target_from,
    wait_for_value,
    worker_process,
)

RQ_DB, RQ_WORKER_DB = 10, 11


# -- RQ ------------------------------------------------------------------------------------


def test_rq_depths_registries_and_oldest_age(make_queue_collector, redis_db, broker_db_url):
    from rq import Queue

    client = redis_db(RQ_DB)
    start = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with freeze_time(start) as clock:
        first = Queue("afx_tq_q1", connection=client)
        second = Queue("afx_tq_q2", connection=client)
        for i in range(5):
            first.enqueue("tests.tq_rq_jobs.ok", i)
        clock.tick(30)
        for i in range(2):
            second.enqueue("tests.tq_rq_jobs.ok", i)
        second.enqueue_in(dt.timedelta(hours=1), "tests.tq_rq_jobs.ok", 9)
        parent = second.enqueue("tests.tq_rq_jobs.ok", 1)
        second.enqueue("tests.tq_rq_jobs.ok", 2, depends_on=parent)
        clock.tick(60)
        collector = make_queue_collector(
            target_from({"name": "r", "kind": "rq", "url": broker_db_url(RQ_DB)})
        )
        got = scrape(collector)
    assert got.success
    assert (
        got.value("background_tasks_queued", backend="r", queue="afx_tq_q1", priority="none") == 5
    )
    assert (
        got.value("background_tasks_queued", backend="r", queue="afx_tq_q2", priority="none") == 3
    )
    assert (
        got.value("background_tasks_oldest_waiting_age_seconds", backend="r", queue="afx_tq_q1")
        == 90
    )
    assert (
        got.value("background_tasks_oldest_waiting_age_seconds", backend="r", queue="afx_tq_q2")
        == 60
    )
    registry = {
        reg: got.value("background_tasks_registry", backend="r", queue="afx_tq_q2", registry=reg)
        for reg in ("scheduled", "deferred", "started", "finished", "failed")
    }
    assert registry == {"scheduled": 1, "deferred": 1, "started": 0, "finished": 0, "failed": 0}
    assert got.value("background_tasks_workers", backend="r", state="idle") == 0
    assert (
        got.value("background_tasks_processed_total", backend="r", type="all", status="success")
        == 0
    )


def test_rq_worker_runs_jobs_and_counts_outcomes(make_queue_collector, redis_db, broker_db_url):
    from rq import Queue

    client = redis_db(RQ_WORKER_DB)
    url = broker_db_url(RQ_WORKER_DB)
    collector = make_queue_collector(
        target_from(
            {
                "name": "r",
                "kind": "rq",
                "url": url,
                "queues": ["afx_tq_w1", "afx_tq_w2", "afx_tq_absent"],
            }
        )
    )
    queues = {name: Queue(name, connection=client) for name in ("afx_tq_w1", "afx_tq_w2")}
    for i in range(3):
        queues["afx_tq_w1"].enqueue("tests.tq_rq_jobs.ok", i)
    for _ in range(2):
        queues["afx_tq_w2"].enqueue("tests.tq_rq_jobs.boom")
    before = scrape(collector)
    assert (
        before.value("background_tasks_queued", backend="r", queue="afx_tq_w1", priority="none")
        == 3
    )
    assert (
        before.value("background_tasks_queued", backend="r", queue="afx_tq_absent", priority="none")
        == 0
    )
    worker = ["rq.cli", "worker", "-u", url, "afx_tq_w1", "afx_tq_w2", "--name", "afx_tq_rq_worker"]
    with worker_process(worker):
        wait_for_value(
            collector,
            "background_tasks_processed_total",
            2,
            "failed jobs counted",
            backend="r",
            type="all",
            status="failure",
        )
        got = wait_for_value(
            collector,
            "background_tasks_processed_total",
            3,
            "jobs done",
            backend="r",
            type="all",
            status="success",
        )
        got = scrape(collector)
        for queue in ("afx_tq_w1", "afx_tq_w2"):
            assert (
                got.value("background_tasks_queued", backend="r", queue=queue, priority="none") == 0
            )
            assert got.value("background_tasks_in_progress", backend="r", queue=queue) == 0
        assert (
            got.value(
                "background_tasks_registry", backend="r", queue="afx_tq_w1", registry="finished"
            )
            == 3
        )
        assert (
            got.value(
                "background_tasks_registry", backend="r", queue="afx_tq_w2", registry="failed"
            )
            == 2
        )
        assert got.value("background_task_duration_seconds_count", backend="r", type="all") == 5
        assert got.value("background_task_duration_seconds_sum", backend="r", type="all") > 0
        assert (
            sum(
                got.value("background_tasks_workers", backend="r", state=s) or 0
                for s in got.labels("background_tasks_workers", "state")
            )
            == 1
        )
    gone = scrape(collector)
    assert gone.labels("background_tasks_workers", "state") == {"idle", "busy"}
    assert gone.value("background_tasks_workers", backend="r", state="idle") == 0
