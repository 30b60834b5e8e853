"""Celery outcomes from task events (collectors/queues_celery_events.py): real Celery workers
started with -E on a private redis-server, tasks that succeed, fail, retry, reject and expire,
a worker killed with SIGKILL, the broker restarted under the receiver, close and reload."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import threading
import time

import pytest
import yaml

from collectors.queues_celery_events import EXPIRE_INTERVALS
from exporter.config import read_config
from exporter.state import Exporter
from tests.redis_server import RedisServer
from tests.support import wait_until
from tests.tq_support import (
    CONTROL_EXCHANGE,
    EVENT_EXCHANGE,
    Scrape,
    broker_url,
    scrape,
    wait_for_value,
    worker_process,
)

QUEUE = "afx_tq_ev"
HEARTBEAT = 1  # seconds between a worker's heartbeats (`--heartbeat-interval`)


def entry(url: str, **more: object) -> dict[str, object]:
    return {
        "name": "ev",
        "kind": "celery",
        "url": url,
        "queues": [QUEUE],
        "control_exchange": CONTROL_EXCHANGE,
        "event_exchange": EVENT_EXCHANGE,
        **more,
    }


def worker(*extra: str) -> list[str]:
    return [
        "celery", "-A", "tests.tq_celery_app", "worker", "-Q", QUEUE, "-P", "solo",
        "-n", f"afx_tq_ev_{os.getpid()}_{time.monotonic_ns()}@%h", "--without-gossip",
        "--without-mingle", "--heartbeat-interval", str(HEARTBEAT), "-l", "warning", *extra,
    ]  # fmt: skip


def sender(url: str):
    """The test's producer: sends task-sent events, as `task_send_sent_event` makes apps do."""
    from celery import Celery

    app = Celery("afx_tq_sender", broker=url, set_as_current=False)
    app.conf.update(
        task_send_sent_event=True,
        event_exchange=EVENT_EXCHANGE,
        control_exchange=CONTROL_EXCHANGE,
    )
    return app


def processed(got: Scrape, task: str, status: str) -> float | None:
    return got.value("background_tasks_processed_total", backend="ev", type=task, status=status)


def counters(got: Scrape) -> dict[tuple[str, str], float]:
    return {
        (s.labels["type"], s.labels["status"]): s.value
        for family in got.families
        for s in family.samples
        if s.name == "background_tasks_processed_total"
    }


def run_ok(app, collector, tasks: int, total: int, what: str, timeout: float = 30) -> None:
    """Send `tasks` afx_tq.ok tasks; wait until `collector` (a callable giving it, for a
    reloading exporter) counts `total` successes."""
    for i in range(tasks):
        app.send_task("afx_tq.ok", args=[i], queue=QUEUE)
    current = collector if callable(collector) else lambda: collector
    wait_until(
        lambda: processed(scrape(current()), "afx_tq.ok", "success") == total,
        timeout=timeout,
        what=what,
    )


def online(collector) -> float | None:
    return scrape(collector).value("background_tasks_workers", backend="ev", state="online")


def test_outcomes_run_time_and_queue_wait_match_the_tasks_sent(
    make_queue_collector, redis_db, broker_redis
):
    redis_db(1)
    url = broker_url(broker_redis, 1)
    collector = make_queue_collector(entry(url, type_limit=3))
    wait_for_value(
        collector, "background_task_events_connected", 1, "the receiver connected", backend="ev"
    )
    app = sender(url)
    history: list[dict[tuple[str, str], float]] = []
    with worker_process(worker("-E"), env={"AFX_TQ_CELERY_BROKER": url}):
        wait_until(lambda: online(collector) == 1, timeout=30, what="the worker's heartbeats")
        # first sightings decide the type budget: ok, boom, flaky get labels, the rest is other
        for i in range(5):
            app.send_task("afx_tq.ok", args=[i], queue=QUEUE)
        for _ in range(3):
            app.send_task("afx_tq.boom", queue=QUEUE)
        for _ in range(2):
            app.send_task("afx_tq.flaky", queue=QUEUE)
        app.send_task("afx_tq.refuse", queue=QUEUE)
        for _ in range(2):
            app.send_task("afx_tq.nap", args=[0.3], queue=QUEUE)
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
        app.send_task("afx_tq.ok", args=[9], queue=QUEUE, expires=past)

        def settled() -> bool:
            got = scrape(collector)
            history.append(counters(got))
            return (
                processed(got, "other", "success") == 2
                and processed(got, "afx_tq.ok", "revoked") == 1
            )

        wait_until(settled, timeout=60, interval=0.2, what="every task's outcome")
        got = scrape(collector)
        history.append(counters(got))
    app.close()
    expected = {
        ("afx_tq.ok", "success"): 5,
        ("afx_tq.ok", "revoked"): 1,
        ("afx_tq.boom", "failure"): 3,
        ("afx_tq.flaky", "retry"): 2,
        ("afx_tq.flaky", "success"): 2,
        ("other", "success"): 2,  # the naps
        ("other", "failure"): 1,  # Reject(requeue=False): Celery sends task-failed ...
        ("other", "rejected"): 1,  # ... and task-rejected
    }
    final = counters(got)
    assert {key: value for key, value in final.items() if value} == expected
    # every status of every type is served, at 0 where nothing happened
    assert len(final) == 4 * 5
    for before, after in zip(history, history[1:], strict=False):
        assert all(after.get(key, 0) >= value for key, value in before.items()), (before, after)
    assert got.series_dropped == 2  # refuse and nap folded under other

    def hist(name: str, task: str, le: str | None = None) -> float | None:
        if le is None:
            return got.value(f"{name}_count", backend="ev", type=task)
        return got.value(f"{name}_bucket", backend="ev", type=task, le=le)

    run = "background_task_duration_seconds"
    # run times of the runs that succeeded or failed
    assert [hist(run, t) for t in ("afx_tq.ok", "afx_tq.boom", "afx_tq.flaky", "other")] == [
        5, 3, 2, 3,
    ]  # fmt: skip
    assert hist(run, "other", "0.25") == 1  # the refused run; the two 0.3 s naps are longer
    assert hist(run, "other", "+Inf") == 3
    assert got.value(f"{run}_sum", backend="ev", type="other") >= 0.6
    wait = "background_task_queue_wait_seconds"
    # one wait per run started: flaky ran twice each, the expired task never started
    assert [hist(wait, t) for t in ("afx_tq.ok", "afx_tq.boom", "afx_tq.flaky", "other")] == [
        5, 3, 4, 3,
    ]  # fmt: skip


def test_a_worker_killed_with_sigkill_drops_out_within_two_heartbeats(
    make_queue_collector, redis_db, broker_redis
):
    client = redis_db(2)
    url = broker_url(broker_redis, 2)
    collector = make_queue_collector(entry(url))
    scrape(collector)  # starts the receiver
    with worker_process(worker(), env={"AFX_TQ_CELERY_BROKER": url}) as pid:
        wait_until(lambda: online(collector) == 1, timeout=30, what="the worker's heartbeats")
        # past one expiry window: only the heartbeats since the first keep it online
        alive_until = time.monotonic() + (EXPIRE_INTERVALS + 1) * HEARTBEAT
        while time.monotonic() < alive_until:  # heartbeats keep it online, scrape after scrape
            assert online(collector) == 1
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: online(collector) == 0, timeout=30, what="the killed worker gone")
        gone_after = time.monotonic() - killed
    # the last heartbeat came at most one interval before the kill: gone two intervals after it
    # (plus a scrape); the pidbox binding the broker-side count relied on is still there
    assert gone_after <= EXPIRE_INTERVALS * HEARTBEAT + 1.0, gone_after
    pidbox = client.smembers(f"_kombu.binding.{CONTROL_EXCHANGE}.pidbox")
    assert any(b"afx_tq_ev_" in member for member in pidbox)


def test_the_receiver_reconnects_after_a_broker_restart(make_queue_collector, tmp_path):
    server = RedisServer(tmp_path).start()
    url = f"redis://127.0.0.1:{server.port}/0"
    app = sender(url)
    try:
        collector = make_queue_collector(entry(url))
        wait_for_value(
            collector, "background_task_events_connected", 1, "the receiver connected", backend="ev"
        )
        with worker_process(worker("-E"), env={"AFX_TQ_CELERY_BROKER": url}):
            wait_until(lambda: online(collector) == 1, timeout=30, what="the worker online")
            run_ok(app, collector, 2, total=2, what="two successes")
            server.stop()
            assert not scrape(collector).success  # the broker is down: the target reads down
            server.start()  # same port, empty
            wait_for_value(
                collector, "background_task_events_connected", 1, "reconnected", backend="ev"
            )
            wait_until(lambda: online(collector) == 1, timeout=60, what="the worker back")
            run_ok(app, collector, 3, total=5, what="3 more successes on top of the 2", timeout=60)
    finally:
        app.close()
        server.stop()


async def reload_and_close_the_old(exporter: Exporter) -> None:
    """A reload, and the closing of the old units it starts in the background."""
    await exporter.reload()
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    await asyncio.gather(*others)


def event_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("celery-events-ev")]


def test_reload_of_an_unchanged_target_keeps_counts_and_close_stops_the_receiver(
    tmp_path, redis_db, broker_redis
):
    redis_db(3)
    url = broker_url(broker_redis, 3)
    config_file = tmp_path / "exporter.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
                "task_queues": [entry(url)],
            }
        )
    )
    exporter = Exporter(read_config(config_file))

    def collector():
        (unit,) = exporter.loaded.units
        return unit.collector

    app = sender(url)
    earlier = set(event_threads())  # of the tests before, still ending
    with worker_process(worker("-E"), env={"AFX_TQ_CELERY_BROKER": url}):
        wait_until(lambda: online(collector()) == 1, timeout=30, what="the worker online")
        run_ok(app, collector, 3, total=3, what="three successes")
        (thread,) = set(event_threads()) - earlier
        before = collector()
        asyncio.run(reload_and_close_the_old(exporter))
        assert collector() is not before
        assert processed(scrape(collector()), "afx_tq.ok", "success") == 3
        assert set(event_threads()) - earlier == {thread}  # the same receiver, never stopped
        run_ok(app, collector, 1, total=4, what="the next success, on the reloaded collector")
    app.close()
    exporter.loaded.engine.close()
    thread.join(5)
    assert not thread.is_alive()


@pytest.mark.parametrize("events", [False])
def test_events_off_starts_no_receiver(make_queue_collector, redis_db, broker_redis, events):
    redis_db(4)
    earlier = set(event_threads())
    collector = make_queue_collector(entry(broker_url(broker_redis, 4), events=events))
    got = scrape(collector)
    assert got.success
    assert got.value("background_task_events_connected", backend="ev") is None
    assert set(event_threads()) <= earlier
