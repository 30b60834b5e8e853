"""collectors/task_queue.py when its broker fails: a closed port for every backend reads down
and the scrape still answers 200, a stalled broker costs one deadline; and the exposition of a
real collection passes promtool. The broker is this module's private redis-server."""

from __future__ import annotations

import httpx
import pytest

from exporter.app import create_app
from exporter.config import load_config
from exporter.state import Exporter
from tests.support import free_port, serve_app
from tests.tq_support import (
    Scrape,
    scrape,
    target_from,
)

RQ_DB = 10


# -- a broker that is down -----------------------------------------------------------------


def test_broker_at_a_closed_port_reads_down_and_the_scrape_answers_200(broker_db_url):
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
                {
                    "name": "live",
                    "kind": "rq",
                    "url": broker_db_url(RQ_DB),
                    "queues": ["afx_tq_live"],
                },
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
def test_every_backend_at_a_closed_port_reads_down_as_refused(make_queue_collector, entry, kind):
    port = free_port()
    entry = {**entry, "url": entry["url"].format(port=port)}
    collector = make_queue_collector(target_from({"name": "gone", **entry}))
    got = scrape(collector)
    assert not got.success
    assert got.reason == "refused"
    assert [f.name for f in got.families] == ["background_tasks_up"]
    assert got.value("background_tasks_up", backend="gone", kind=kind) == 0
    collector.close()


# -- deadline and exposition ---------------------------------------------------------------


def test_a_stalled_broker_costs_one_deadline_not_a_stuck_scrape(make_queue_collector, broker_redis):
    import threading

    port, client = broker_redis.port, broker_redis.client()
    target = target_from(
        {"name": "slow", "kind": "rq", "url": f"redis://127.0.0.1:{port}/0", "queues": ["afx_tq_q"]}
    )
    collector = make_queue_collector(target)
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


def test_exposition_passes_promtool(redis_db, broker_db_url):
    import subprocess

    from rq import Queue

    from tests.support import require_binary

    promtool = require_binary("promtool")
    client = redis_db(RQ_DB)
    Queue("afx_tq_lint", connection=client).enqueue("tests.tq_rq_jobs.ok", 1)
    config = load_config(
        {
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "task_queues": [{"name": "lint", "kind": "rq", "url": broker_db_url(RQ_DB)}],
        }
    )
    with serve_app(create_app(Exporter(config))) as base:
        body = httpx.get(f"{base}/metrics", headers={"Accept": "text/plain"}, timeout=30).text
    assert 'background_tasks_queued{backend="lint",priority="none",queue="afx_tq_lint"} 1.0' in body
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
