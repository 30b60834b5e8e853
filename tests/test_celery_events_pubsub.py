"""Celery events on Redis by pub/sub (collectors/queues_celery_pubsub.py): the receiver gets
every event a real Celery producer publishes (any db, with kombu's `global_keyprefix`) and
moves the server's keyspace_hits/misses by exactly what the exporter's ledger records: nothing.
A server that stops answering (SIGSTOP) is noticed by the receiver's PING."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from collectors.own_lookups import LEDGER, server_identity
from collectors.queues_celery import CeleryTarget
from collectors.queues_celery_pubsub import decode, event_pattern, listen
from collectors.queues_outcomes import Outcomes
from collectors.task_queue import DURATION, QUEUE_WAIT
from tests.redis_server import RedisServer, private_redis
from tests.support import wait_until

EXCHANGE = "afx_ev_pubsub"
TASKS = 40


@pytest.fixture
def server(tmp_path: Path):
    with private_redis(tmp_path) as srv:
        yield srv


def stats(client: redis.Redis) -> tuple[int, int]:
    info = client.info("stats")
    return info["keyspace_hits"], info["keyspace_misses"]


def producer(url: str, key_prefix: str):
    """A Celery app that publishes events as the application's workers and producers do."""
    from celery import Celery

    app = Celery("afx_ev_pubsub", broker=url, set_as_current=False)
    app.conf.event_exchange = EXCHANGE
    if key_prefix:
        app.conf.broker_transport_options = {"global_keyprefix": key_prefix}
    return app


@pytest.mark.parametrize(("db", "key_prefix"), [(0, ""), (3, "afx:pfx:")])
def test_the_receiver_gets_every_event_and_looks_no_key_up(server: RedisServer, db, key_prefix):
    url = f"redis://127.0.0.1:{server.port}/{db}"
    target = CeleryTarget(
        name="ev", url=url, queues=("afx",), event_exchange=EXCHANGE, key_prefix=key_prefix
    )
    outcomes = Outcomes("ev", 10, DURATION, QUEUE_WAIT)
    tracker = target.outcome_tracker(lambda statuses: outcomes)
    assert tracker is not None
    reader = server.client()
    identity = server_identity(target.redis_client().connection_pool.connection_kwargs)
    app = producer(url, key_prefix)
    with app.events.default_dispatcher(hostname="w1@h") as dispatcher:
        dispatcher.send("worker-online", freq=1.0)  # the producer's own setup, not measured
        before, own_before = stats(reader), LEDGER.totals(identity)
        started = time.monotonic()
        tracker.start()
        wait_until(lambda: tracker.connected_since is not None, what="the receiver subscribed")
        for i in range(TASKS):
            task = str(uuid.uuid4())
            dispatcher.send("task-received", uuid=task, name="afx.ev", timestamp=time.time())
            dispatcher.send("task-started", uuid=task, timestamp=time.time())
            outcome = "task-succeeded" if i % 4 else "task-failed"
            dispatcher.send(outcome, uuid=task, runtime=0.01, timestamp=time.time())

        def counted() -> float:
            return sum(value for (name, _), value in outcomes._counts.items() if name == "afx.ev")

        wait_until(lambda: counted() == TASKS, what="every outcome received")
        while time.monotonic() - started < 3.0:  # a few seconds of listening
            time.sleep(0.2)
        dispatcher.send("worker-heartbeat", freq=1.0)
        wait_until(lambda: tracker.online(time.monotonic()) == 1, what="the heartbeat heard")
        tracker.close()
        after, own_after = stats(reader), LEDGER.totals(identity)
    app.close()
    assert outcomes._counts[("afx.ev", "success")] == TASKS * 3 / 4
    assert outcomes._counts[("afx.ev", "failure")] == TASKS / 4
    recorded = (own_after.hits - own_before.hits, own_after.misses - own_before.misses)
    measured = (after[0] - before[0], after[1] - before[1])
    assert measured == recorded == (0, 0)


def test_the_pattern_is_the_one_kombus_publishes_on(server: RedisServer):
    """Celery's own publish reaches the pattern (db 5, a prefix with a glob character)."""
    url = f"redis://127.0.0.1:{server.port}/5"
    pubsub = server.client().pubsub()
    pubsub.psubscribe(event_pattern(EXCHANGE, 5, "afx[1]:"))
    assert pubsub.get_message(timeout=5)["type"] == "psubscribe"
    app = producer(url, "afx[1]:")
    with app.events.default_dispatcher() as dispatcher:
        dispatcher.send("task-succeeded", uuid="u1", runtime=0.5)
    app.close()
    message = pubsub.get_message(timeout=5)
    pubsub.close()
    assert message is not None and message["type"] == "pmessage"
    assert message["channel"] == f"afx[1]:/5.{EXCHANGE}/task.succeeded".encode()
    event = decode(message["data"])
    assert event["type"] == "task-succeeded" and event["uuid"] == "u1" and event["runtime"] == 0.5


def test_a_server_that_stops_answering_is_noticed_by_ping(server: RedisServer):
    assert server.process is not None
    stop = threading.Event()
    connected = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            listen(server.client(), "nothing/*", print, stop, connected.set, 0.2, 1.0)
        except BaseException as exc:  # noqa: BLE001 - the test reads what ended it
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert connected.wait(5)
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        thread.join(10)  # silence 1 s, PING, no pong within 1 s more
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        stop.set()
    assert not thread.is_alive()
    assert failure and isinstance(failure[0], ConnectionError), failure


def test_an_event_that_is_not_json_is_dropped_with_a_note(server: RedisServer):
    """kombu's receiver accepted JSON only; so does ours (a pickled event is not unpickled)."""
    url = f"redis://127.0.0.1:{server.port}/0"
    target = CeleryTarget(name="ev", url=url, queues=("afx",), event_exchange=EXCHANGE)
    outcomes = Outcomes("ev", 10, DURATION, QUEUE_WAIT)
    tracker = target.outcome_tracker(lambda statuses: outcomes)
    assert tracker is not None
    tracker.start()
    wait_until(lambda: tracker.connected_since is not None, what="the receiver subscribed")
    app = producer(url, "")
    app.conf.event_serializer = "pickle"
    with app.events.default_dispatcher(hostname="w1@h") as dispatcher:
        dispatcher.send("task-received", uuid="p1", name="afx.pickled")
    app.conf.event_serializer = "json"
    with app.events.default_dispatcher(hostname="w1@h") as dispatcher:
        dispatcher.send("task-succeeded", uuid="p2", runtime=0.1)
    wait_until(lambda: outcomes._counts.get(("unknown", "success")) == 1, what="the JSON event")
    tracker.close()
    app.close()
    assert "afx.pickled" not in outcomes._types
    assert "application/x-python-serialize" in tracker.dropped
