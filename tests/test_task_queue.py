"""collectors/task_queue.py on real brokers: Celery and RQ on a private redis-server (its dbs
8-11, emptied per test), real Celery and RQ workers as subprocesses, config errors and a broker
that is down.
"""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from freezegun import freeze_time

from collectors.task_queue import TaskQueueCollector
from exporter.app import create_app
from exporter.config import load_config
from exporter.schema import ConfigError
from exporter.state import Exporter
from tests.support import free_port, serve_app
from tests.tq_support import (
    CONTROL_EXCHANGE,
    EVENT_EXCHANGE,
    Scrape,
    broker_redis_fixture,  # noqa: F401 - the broker_redis fixture
    broker_url,
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
    redis_db_fixture,  # noqa: F401 - the redis_db fixture
    scrape,
    target_from,
    wait_for_value,
    worker_process,
)

CELERY_DB, CELERY_WORKER_DB, RQ_DB, RQ_WORKER_DB = 8, 9, 10, 11


@pytest.fixture
def redis_url(broker_redis):
    """`redis_url(n)`: the URL of db `n` of this module's private redis-server."""
    return lambda db: broker_url(broker_redis, db)


def celery_app(broker: str, **transport_options):
    from celery import Celery

    app = Celery("afx_tq_sender", broker=broker, set_as_current=False)
    if transport_options:
        app.conf.broker_transport_options = transport_options
    return app


# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            {"kind": "rq", "url": "amqp://app:hunter22@127.0.0.1:5672/"},
            "task_queues[0]: url: kind rq needs a redis/rediss/unix URL, got amqp://",
        ),
        (
            {"kind": "sql", "url": "postgresql://127.0.0.1/x"},
            "task_queues[0].query: required key is missing",
        ),
        ({"kind": "redis", "url": "redis://127.0.0.1"}, "task_queues[0].keys: required key"),
        (
            {"kind": "redis", "url": "redis://127.0.0.1", "keys": []},
            "task_queues[0].keys: must not be empty",
        ),
        (
            {"kind": "rabbitmq", "url": "amqp://127.0.0.1"},
            "queues: required for RabbitMQ",
        ),
        (
            {"kind": "celery", "url": "amqp://127.0.0.1"},
            "queues: required for RabbitMQ",
        ),
        # an option of another kind is an unknown key that says where it belongs
        (
            {"kind": "rq", "url": "redis://127.0.0.1", "priority_steps": [0, 5]},
            "task_queues[0].priority_steps: unknown key for kind rq (allowed: ",
        ),
        (
            {"kind": "rq", "url": "redis://127.0.0.1", "priority_steps": [0, 5]},
            "; it applies to kind celery",
        ),
        (
            {"kind": "redis", "url": "redis://127.0.0.1", "keys": [{"key": "k"}], "queues": ["q"]},
            "task_queues[0].queues: unknown key for kind redis",
        ),
        (
            {"kind": "sql", "url": "sqlite://", "query": "SELECT 1", "quueue_limit": 3},
            "unknown key for kind sql; did you mean 'queue_limit'?",
        ),
        ({"url": "redis://127.0.0.1"}, "task_queues[0].kind: required key is missing (one of"),
        (
            {"kind": "sidekiq", "url": "redis://127.0.0.1"},
            "task_queues[0].kind: must be one of celery, rq, redis, sql, rabbitmq, got str",
        ),
        (
            {"kind": "celery", "url": "redis://127.0.0.1", "priority_steps": [3, 1]},
            "task_queues[0].priority_steps: must be increasing",
        ),
        (
            {"kind": "celery", "url": "redis://:hunter22@127.0.0.1", "transport": "amqp"},
            "transport: amqp does not match the URL scheme redis://",
        ),
        (
            {"kind": "rq", "url": "redis://:hunter22@127.0.0.1", "password": "hunter22"},
            "password: the url already has a password",
        ),
        ({"kind": "rq", "url": "redis://:hunter22@127.0.0.1:99999"}, "url: not a valid URL"),
        ({"kind": "rq", "url": "redis://127.0.0.1", "queue_limit": 0}, "queue_limit: must be"),
        # TLS keys: the Redis collector's own rules
        (
            {"kind": "rq", "url": "redis://:hunter22@127.0.0.1", "server_name": "q.internal"},
            "task_queues[0]: server_name apply only to rediss:// URLs",
        ),
        (
            {"kind": "celery", "url": "amqp://127.0.0.1", "queues": ["q"], "username": "u"},
            "task_queues[0]: username: apply to Celery on Redis only",
        ),
        (
            {"kind": "sql", "url": "not a url", "query": "SELECT 1"},
            "url: not a valid URL (no scheme",
        ),
    ],
)
def test_config_errors_name_the_key_and_never_echo_the_password(entry, problem):
    with pytest.raises(ConfigError) as caught:
        load_config({"task_queues": [{"name": "jobs", **entry}]})
    message = str(caught.value)
    assert problem in message
    assert "hunter22" not in message


def test_password_comes_from_environment_or_file(tmp_path, caplog):
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pw\n")
    config = load_config(
        {
            "task_queues": [
                {
                    "name": "a",
                    "kind": "rq",
                    "url": "redis://127.0.0.1",
                    "password_file": str(secret),
                },
                {"name": "b", "kind": "rq", "url": "redis://:${AFX_TQ_PW}@127.0.0.1/1"},
            ]
        },
        env={"AFX_TQ_PW": "env-pw"},
    )
    a, b = config.targets["task_queues"]
    assert a.password.reveal() == "s3cret-pw" and "s3cret" not in repr(a)
    assert b.url == "redis://:env-pw@127.0.0.1/1"
    assert "s3cret-pw" in config.secrets
    # a failure that quotes either password is logged redacted
    for target, password in ((a, "s3cret-pw"), (b, "env-pw")):
        TaskQueueCollector(target).log_failure("error", RuntimeError(f"auth with {password}"))
        assert password not in caplog.text
    assert "auth with ***" in caplog.text


# -- Celery on Redis -----------------------------------------------------------------------


def test_celery_depths_per_queue_and_priority_step(make_collector, redis_db, redis_url):
    redis_db(CELERY_DB)
    app = celery_app(redis_url(CELERY_DB))
    sent = {("afx_tq_a", 0): 3, ("afx_tq_a", 4): 2, ("afx_tq_a", 9): 1, ("afx_tq_b", 7): 4}
    for (queue, priority), count in sent.items():
        for i in range(count):
            app.send_task("afx_tq.ok", args=[i], queue=queue, priority=priority)
    collector = make_collector(
        target_from({"name": "c", "kind": "celery", "url": redis_url(CELERY_DB)})
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
    make_collector, redis_db, redis_url
):
    client = redis_db(CELERY_DB)
    app = celery_app(redis_url(CELERY_DB), priority_steps=[0, 5], sep=":")
    for priority, count in ((1, 2), (5, 3), (8, 1)):
        for i in range(count):
            app.send_task("afx_tq.ok", args=[i], queue="afx_tq_c", priority=priority)
    assert client.llen("afx_tq_c:5") == 4  # the layout the collector must follow
    target = target_from(
        {
            "name": "c",
            "kind": "celery",
            "url": redis_url(CELERY_DB),
            "priority_steps": [0, 5],
            "sep": ":",
            "queues": ["afx_tq_c", "afx_tq_never_used"],
        }
    )
    got = scrape(make_collector(target))
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


def test_celery_worker_runs_tasks_and_inspect_counts_them(make_collector, redis_db, redis_url):
    redis_db(CELERY_WORKER_DB)
    url = redis_url(CELERY_WORKER_DB)
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
    collector = make_collector(target)
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


# -- RQ ------------------------------------------------------------------------------------


def test_rq_depths_registries_and_oldest_age(make_collector, redis_db, redis_url):
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
        collector = make_collector(
            target_from({"name": "r", "kind": "rq", "url": redis_url(RQ_DB)})
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


def test_rq_worker_runs_jobs_and_counts_outcomes(make_collector, redis_db, redis_url):
    from rq import Queue

    client = redis_db(RQ_WORKER_DB)
    url = redis_url(RQ_WORKER_DB)
    collector = make_collector(
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


# -- a broker that is down -----------------------------------------------------------------


def test_broker_at_a_closed_port_reads_down_and_the_scrape_answers_200(redis_url):
    closed = free_port()
    config = load_config(
        {
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "task_queues": [
                {
                    "name": "gone_rq",
                    "kind": "rq",
                    "url": f"redis://:pw-123456@127.0.0.1:{closed}/0",
                },
                {
                    "name": "gone_rmq",
                    "kind": "rabbitmq",
                    "url": f"amqp://guest:guest@127.0.0.1:{closed}/",
                    "queues": ["afx_tq_x"],
                },
                {"name": "live", "kind": "rq", "url": redis_url(RQ_DB), "queues": ["afx_tq_live"]},
            ],
        }
    )
    with serve_app(create_app(Exporter(config))) as base:
        response = httpx.get(f"{base}/metrics", timeout=30)
    assert response.status_code == 200
    body = response.text
    assert 'background_tasks_up{backend="gone_rq",kind="rq"} 0.0' in body
    assert 'background_tasks_up{backend="gone_rmq",kind="rabbitmq"} 0.0' in body
    assert 'background_tasks_up{backend="live",kind="rq"} 1.0' in body
    assert 'afirgen_exporter_collector_success{collector="task_queue",target="gone_rq"} 0.0' in body
    assert "pw-123456" not in body


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"kind": "rq", "url": "redis://127.0.0.1:{port}/0"}, "rq"),
        ({"kind": "celery", "url": "redis://127.0.0.1:{port}/0"}, "celery-redis"),
        (
            {"kind": "celery", "url": "amqp://guest:guest@127.0.0.1:{port}/", "queues": ["q"]},
            "celery-amqp",
        ),
        ({"kind": "redis", "url": "redis://127.0.0.1:{port}/0", "keys": [{"key": "k"}]}, "redis"),
        (
            {"kind": "rabbitmq", "url": "amqp://guest:guest@127.0.0.1:{port}/", "queues": ["q"]},
            "rabbitmq",
        ),
        (
            {
                "kind": "sql",
                "url": "postgresql+psycopg://postgres@127.0.0.1:{port}/test",
                "query": "SELECT 1",
            },
            "sql",
        ),
    ],
)
def test_every_backend_at_a_closed_port_reads_down_as_refused(make_collector, entry, kind):
    port = free_port()
    entry = {**entry, "url": entry["url"].format(port=port)}
    collector = make_collector(target_from({"name": "gone", **entry}))
    got = scrape(collector)
    assert not got.success
    assert got.reason == "refused"
    assert [f.name for f in got.families] == ["background_tasks_up"]
    assert got.value("background_tasks_up", backend="gone", kind=kind) == 0
    collector.close()


# -- deadline and exposition ---------------------------------------------------------------


def test_a_stalled_broker_costs_one_deadline_not_a_stuck_scrape(make_collector, broker_redis):
    import threading

    port, client = broker_redis.port, broker_redis.client()
    target = target_from(
        {"name": "slow", "kind": "rq", "url": f"redis://127.0.0.1:{port}/0", "queues": ["afx_tq_q"]}
    )
    collector = make_collector(target)
    assert scrape(collector).success  # connected and working before the stall
    stall = threading.Thread(target=lambda: client.execute_command("DEBUG", "SLEEP", "3"))
    stall.start()
    try:
        from tests.support import wait_until

        # the server is busy once a PING from another connection no longer answers at once
        wait_until(lambda: _ping_stalls(port), timeout=5, what="the server to stall")
        got = Scrape(collector, seconds=0.5)
        assert not got.success
        assert got.reason == "timeout"
        assert got.value("background_tasks_up", backend="slow", kind="rq") == 0
    finally:
        stall.join()
        client.close()
    # the connection that timed out was dropped: the next scrape works again
    assert scrape(collector).success
    collector.close()


def _ping_stalls(port: int) -> bool:
    """True if a raw PING gets no answer within 0.2 s (redis-py would retry timeouts)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.settimeout(0.2)
        sock.sendall(b"PING\r\n")
        try:
            return not sock.recv(16)
        except TimeoutError:
            return True


def test_exposition_passes_promtool(redis_db, redis_url):
    import subprocess

    from rq import Queue

    from tests.support import require_binary

    promtool = require_binary("promtool")
    client = redis_db(RQ_DB)
    Queue("afx_tq_lint", connection=client).enqueue("tests.tq_rq_jobs.ok", 1)
    config = load_config(
        {
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "task_queues": [{"name": "lint", "kind": "rq", "url": redis_url(RQ_DB)}],
        }
    )
    with serve_app(create_app(Exporter(config))) as base:
        body = httpx.get(f"{base}/metrics", headers={"Accept": "text/plain"}, timeout=30).text
    assert 'background_tasks_queued{backend="lint",priority="none",queue="afx_tq_lint"} 1.0' in body
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
