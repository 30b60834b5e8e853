"""collectors/task_queue.py on plain Redis keys (a private redis-server) and RabbitMQ queues
and exchanges named for this run (`afx_tq_<run>_*`, deleted afterwards), plus the label budget.
The SQL kind is in tests/test_task_queue_sql.py.
"""

from __future__ import annotations

import time

import pytest

from tests.tq_support import (
    CONTROL_EXCHANGE,
    EVENT_EXCHANGE,
    broker_url,
    scrape,
    target_from,
    unique,
    wait_for_value,
    worker_process,
)

KEYS_DB = 12


@pytest.fixture
def keys_db(redis_db):
    return redis_db(KEYS_DB)


@pytest.fixture
def keys_url(broker_redis):
    return broker_url(broker_redis, KEYS_DB)


# -- plain Redis keys ----------------------------------------------------------------------


def test_redis_lists_and_sorted_sets_with_a_priority_mapping(
    make_queue_collector, keys_db, keys_url
):
    keys_db.rpush("afx_tq:mail:high", *range(4))
    keys_db.rpush("afx_tq:mail:low", *range(7))
    keys_db.zadd("afx_tq:scored", {f"job{i}": i for i in range(10)})  # scores are priorities
    now = time.time()
    keys_db.zadd("afx_tq:delayed", {"a": now - 120, "b": now - 30, "c": now})  # enqueue times
    target = target_from(
        {
            "name": "k",
            "kind": "redis",
            "url": keys_url,
            "keys": [
                {"key": "afx_tq:mail:high", "queue": "mail", "priority": "high"},
                {"key": "afx_tq:mail:low", "queue": "mail", "priority": "low"},
                {
                    "key": "afx_tq:scored",
                    "queue": "scored",
                    "type": "zset",
                    "priorities": {"urgent": [0, 2], "normal": [3, 9]},
                },
                {"key": "afx_tq:delayed", "type": "zset", "score_is_enqueue_time": True},
                {"key": "afx_tq:does_not_exist", "queue": "ghost"},
            ],
        }
    )
    got = scrape(make_queue_collector(target))
    assert got.success
    queued = {
        (q, p): got.value("background_tasks_queued", backend="k", queue=q, priority=p)
        for q, p in (
            ("mail", "high"),
            ("mail", "low"),
            ("scored", "urgent"),
            ("scored", "normal"),
            ("afx_tq:delayed", "none"),
            ("ghost", "none"),
        )
    }
    assert queued == {
        ("mail", "high"): 4,
        ("mail", "low"): 7,
        ("scored", "urgent"): 3,
        ("scored", "normal"): 7,
        ("afx_tq:delayed", "none"): 3,
        ("ghost", "none"): 0,
    }
    age = got.value(
        "background_tasks_oldest_waiting_age_seconds", backend="k", queue="afx_tq:delayed"
    )
    assert 120 <= age < 120 + 60  # the scrape happens after `now`, never before


def test_queue_budget_folds_the_smallest_queues_into_other(make_queue_collector, keys_db, keys_url):
    sizes = {"afx_tq_big": 9, "afx_tq_mid": 5, "afx_tq_s1": 2, "afx_tq_s2": 1, "afx_tq_s3": 1}
    for key, size in sizes.items():
        keys_db.rpush(key, *range(size))
    target = target_from(
        {
            "name": "k",
            "kind": "redis",
            "url": keys_url,
            "keys": [{"key": key} for key in sizes],
            "queue_limit": 2,
        }
    )
    got = scrape(make_queue_collector(target))
    assert got.labels("background_tasks_queued", "queue") == {"afx_tq_big", "afx_tq_mid", "other"}
    assert got.value("background_tasks_queued", backend="k", queue="other", priority="none") == 4
    assert got.series_dropped == 3


# -- Redis over TLS ------------------------------------------------------------------------


def test_rq_over_rediss_with_a_private_ca_and_client_certificate(make_queue_collector, tmp_path):
    """The queue's Redis connection is the Redis collector's: CA, server name, client cert."""
    from rq import Queue

    from tests.redis_server import RedisServer, private_redis, tls_args
    from tests.tls_certs import make_certificates

    certs = make_certificates(tmp_path)
    tls_port = RedisServer(tmp_path).port
    with private_redis(tmp_path, *tls_args(tls_port, certs, auth_clients=True)) as server:
        plain = server.client()
        for i in range(3):
            Queue("afx_tq_tls", connection=plain).enqueue("tests.tq_rq_jobs.ok", i)
        plain.close()
        base = {"name": "tls", "kind": "rq", "url": f"rediss://127.0.0.1:{tls_port}/0"}
        trusted = {"ca_file": str(certs["ca"]), "server_name": "redis.test"}
        # the server certificate is signed by the CA: it serves as the client's certificate too
        client_cert = {"cert_file": str(certs["server"]), "key_file": str(certs["server-key"])}
        cases = {
            "trusted": {**trusted, **client_cert},
            "no client certificate": trusted,
            "unnamed": {"ca_file": str(certs["ca"]), **client_cert},  # the IP is not in the cert
            "system CAs": {"server_name": "redis.test", **client_cert},
        }
        got = {
            case: scrape(make_queue_collector({**base, **extra})) for case, extra in cases.items()
        }
    ok = got["trusted"]
    assert ok.success, ok.reason
    assert (
        ok.value("background_tasks_queued", backend="tls", queue="afx_tq_tls", priority="none") == 3
    )
    assert {case: result.success for case, result in got.items()} == {
        "trusted": True,
        "no client certificate": False,
        "unnamed": False,
        "system CAs": False,
    }
    assert got["unnamed"].reason == got["system CAs"].reason == "tls"


# -- RabbitMQ ------------------------------------------------------------------------------


@pytest.fixture
def rabbit(rabbitmq_url):
    from kombu import Connection

    created: list[str] = []
    made_exchanges: list[str] = []
    connection = Connection(rabbitmq_url, connect_timeout=5)
    channel = connection.channel()

    def declare(name: str, messages: int = 0, create: bool = True, exchanges=()):
        """Declare `name` (or only delete it afterwards, when a client declares it itself);
        `exchanges` made by clients (Celery) are deleted afterwards too."""
        created.append(name)
        made_exchanges.extend(exchanges)
        if not create:
            return channel
        channel.queue_declare(queue=name, durable=False, auto_delete=False)
        for i in range(messages):
            channel.basic_publish(
                channel.prepare_message(str(i).encode()), exchange="", routing_key=name
            )
        return channel

    try:
        yield declare
    finally:
        try:
            channel.close()  # cancels the test's consumers first
            cleanup = connection.channel()
            for name in created:
                cleanup.queue_delete(name)
            for name in made_exchanges:
                cleanup.exchange_delete(name)
            cleanup.close()
        finally:
            connection.release()


READY, CONSUMED, MISSING = unique("ready"), unique("consumed"), unique("missing")
CELERY_AMQP = unique("celery_amqp")


def test_rabbitmq_ready_messages_consumers_and_a_missing_queue(
    make_queue_collector, rabbit, rabbitmq_url
):
    rabbit(READY, messages=3)
    channel = rabbit(CONSUMED)
    channel.basic_consume(CONSUMED, callback=lambda message: None)
    target = target_from(
        {
            "name": "mq",
            "kind": "rabbitmq",
            "url": rabbitmq_url,
            "queues": [READY, MISSING, CONSUMED],
        }
    )
    collector = make_queue_collector(target)
    # publishes on another connection land asynchronously: poll, then read all at once
    wait_for_value(
        collector,
        "background_tasks_queued",
        3,
        "3 messages ready",
        backend="mq",
        queue=READY,
        priority="none",
    )
    got = scrape(collector)
    assert got.success
    assert got.value("background_tasks_queue_consumers", backend="mq", queue=CONSUMED) == 1
    assert got.value("background_tasks_queue_consumers", backend="mq", queue=READY) == 0
    exists = {
        q: got.value("background_tasks_queue_exists", backend="mq", queue=q)
        for q in (READY, MISSING, CONSUMED)
    }
    assert exists == {READY: 1, MISSING: 0, CONSUMED: 1}
    # a missing queue gets no invented depth
    assert (
        got.value("background_tasks_queued", backend="mq", queue=MISSING, priority="none") is None
    )


def test_celery_on_rabbitmq_reads_its_queues(make_queue_collector, rabbit, rabbitmq_url):
    from celery import Celery

    # Celery declares the queue (durable) and a direct exchange of the same name itself
    rabbit(CELERY_AMQP, create=False, exchanges=[CELERY_AMQP, EVENT_EXCHANGE])
    app = Celery("afx_tq_sender", broker=rabbitmq_url, set_as_current=False)
    for i in range(5):
        app.send_task("afx_tq.ok", args=[i], queue=CELERY_AMQP)
    app.close()
    target = target_from(
        {
            "name": "ca",
            "kind": "celery",
            "url": rabbitmq_url,
            "queues": [CELERY_AMQP],
            "event_exchange": EVENT_EXCHANGE,
        }
    )
    collector = make_queue_collector(target)
    # publishes on another connection land asynchronously: poll with a deadline
    wait_for_value(
        collector,
        "background_tasks_queued",
        5,
        "5 Celery messages ready",
        backend="ca",
        queue=CELERY_AMQP,
        priority="none",
    )
    got = scrape(collector)
    assert got.value("background_tasks_up", backend="ca", kind="celery-amqp") == 1
    assert (
        got.value("background_tasks_queued", backend="ca", queue=CELERY_AMQP, priority="none") == 5
    )


def test_celery_worker_on_rabbitmq_drains_its_queue_and_events_and_inspect_count(
    make_queue_collector, rabbit, rabbitmq_url
):
    from celery import Celery

    queue = unique("amqp_work")
    rabbit(
        queue,
        create=False,
        exchanges=[
            queue,
            f"{CONTROL_EXCHANGE}.pidbox",
            f"reply.{CONTROL_EXCHANGE}.pidbox",
            EVENT_EXCHANGE,
        ],
    )
    collector = make_queue_collector(
        {
            "name": "ca",
            "kind": "celery",
            "url": rabbitmq_url,
            "queues": [queue],
            "control_exchange": CONTROL_EXCHANGE,
            "event_exchange": EVENT_EXCHANGE,
            "inspect": True,
            # on AMQP the number of workers is unknown, so every inspect waits this long
            "inspect_timeout_seconds": 1.0,
        }
    )
    worker = ["celery", "-A", "tests.tq_celery_app", "worker", "-Q", queue, "-P", "solo",
              "-n", f"{unique('amqp_worker')}@%h", "--without-gossip", "--without-mingle",
              "-E", "-l", "warning"]  # fmt: skip
    with worker_process(worker, env={"AFX_TQ_CELERY_BROKER": rabbitmq_url}):
        wait_for_value(collector, "background_tasks_queue_consumers", 1, "the worker consuming",
                       backend="ca", queue=queue)  # fmt: skip
        wait_for_value(collector, "background_tasks_workers", 1, "the worker's heartbeats",
                       backend="ca", state="online")  # fmt: skip
        app = Celery("afx_tq_sender", broker=rabbitmq_url, set_as_current=False)
        for i in range(3):
            app.send_task("afx_tq.ok", args=[i], queue=queue)
        for _ in range(2):
            app.send_task("afx_tq.boom", queue=queue)
        app.close()
        for task, count in (("afx_tq.ok", 3), ("afx_tq.boom", 2)):
            wait_for_value(
                collector,
                "background_tasks_processed_total",
                count,
                f"{task} counted",
                backend="ca",
                type=task,
                status="accepted",
            )
        # the exporter's own event queue on the test's exchange: outcomes from task events
        for task, status, count in (("afx_tq.ok", "success", 3), ("afx_tq.boom", "failure", 2)):
            wait_for_value(
                collector,
                "background_tasks_processed_total",
                count,
                f"{task} {status} from events",
                backend="ca",
                type=task,
                status=status,
            )
        got = scrape(collector)
        assert (
            got.value("background_task_duration_seconds_count", backend="ca", type="afx_tq.ok") == 3
        )
        assert got.value("background_task_events_connected", backend="ca") == 1
        assert got.value("background_tasks_queued", backend="ca", queue=queue, priority="none") == 0
        assert got.value("background_tasks_queue_exists", backend="ca", queue=queue) == 1
