"""RQ outcomes that survive the workers (collectors/queues_rq_jobs.py): real `rq worker`
processes on a private redis-server, burst workers that exit, a worker killed with SIGKILL, and a
real Prometheus whose `increase()` over the counter is the number of jobs the test ran."""

from __future__ import annotations

import os
import signal

import httpx

from exporter.app import create_app
from exporter.config import load_config
from exporter.state import Exporter
from tests.prometheus_server import prometheus_server, scrape_one
from tests.support import serve_app, wait_until
from tests.tq_support import (
    broker_url,
    scrape,
    target_from,
    worker_process,
)

QUEUES = ["afx_tq_o1", "afx_tq_o2"]
SUCCESS = {"backend": "r", "type": "all", "status": "success"}
FAILURE = {"backend": "r", "type": "all", "status": "failure"}


def burst(url: str, name: str) -> list[str]:
    return ["rq.cli", "worker", "-u", url, *QUEUES, "--burst", "--name", name]


def enqueue(client, ok: int, failing: int, naps: int = 0) -> None:
    from rq import Queue

    first, second = (Queue(name, connection=client) for name in QUEUES)
    for i in range(ok):
        first.enqueue("tests.tq_rq_jobs.ok", i)
    for _ in range(failing):
        second.enqueue("tests.tq_rq_jobs.boom")
    for _ in range(naps):
        second.enqueue("tests.tq_rq_jobs.nap", 0.3)


class Watch:
    """Scrapes of one collector, checking that the counters never go down between two."""

    def __init__(self, collector) -> None:
        self.collector = collector
        self.last = {"success": 0.0, "failure": 0.0}

    def read(self):
        got = scrape(self.collector)
        assert got.success, got.reason
        for labels in (SUCCESS, FAILURE):
            value = got.value("background_tasks_processed_total", **labels)
            assert value is not None and value >= self.last[labels["status"]], (labels, value)
            self.last[labels["status"]] = value
        return got

    def until(self, success: float, failure: float, timeout: float = 60):
        wait_until(
            lambda: self.read() and self.last == {"success": success, "failure": failure},
            timeout=timeout,
            interval=0.2,
            what=f"{success} successes and {failure} failures counted (have {self.last})",
        )
        return self.read()


def test_counts_survive_burst_workers_and_a_killed_worker(
    make_queue_collector, redis_db, broker_redis
):
    client = redis_db(3)
    url = broker_url(broker_redis, 3)
    collector = make_queue_collector(
        target_from({"name": "r", "kind": "rq", "url": url, "queues": QUEUES})
    )
    watch = Watch(collector)
    first = watch.read()
    assert watch.last == {"success": 0, "failure": 0}  # served at 0 before any job ran
    assert first.value("background_task_duration_seconds_count", backend="r", type="all") == 0

    enqueue(client, ok=6, failing=2, naps=2)
    with worker_process(burst(url, "afx_tq_burst_1")) as pid:
        wait_until(lambda: _exited(pid), timeout=60, what="the first burst worker to exit")
    watch.until(success=8, failure=2)

    enqueue(client, ok=3, failing=1)
    with worker_process(burst(url, "afx_tq_burst_2")) as pid:
        wait_until(lambda: _exited(pid), timeout=60, what="the second burst worker to exit")
    got = watch.until(success=11, failure=3)
    # no worker is left: the old sum over live workers read 0 here
    assert got.value("background_tasks_workers", backend="r", state="idle") == 0

    worker = ["rq.cli", "worker", "-u", url, *QUEUES, "--name", "afx_tq_killed"]
    with worker_process(worker) as pid:
        enqueue(client, ok=4, failing=0)
        watch.until(success=15, failure=3)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _exited(pid), timeout=20, what="the killed worker gone")
    got = watch.until(success=15, failure=3)
    for _ in range(3):  # and it stays there
        got = watch.read()
    assert watch.last == {"success": 15, "failure": 3}
    count = got.value("background_task_duration_seconds_count", backend="r", type="all")
    assert count == 18  # every counted job's run time, from its hash
    naps_over_quarter = count - got.value(
        "background_task_duration_seconds_bucket", backend="r", type="all", le="0.25"
    )
    assert naps_over_quarter == 2  # the two 0.3 s naps, the other jobs take milliseconds
    assert got.value("background_task_duration_seconds_sum", backend="r", type="all") >= 0.6


def _exited(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return waited == pid


def test_prometheus_increase_is_the_number_of_jobs(tmp_path, redis_db, broker_redis):
    client = redis_db(4)
    url = broker_url(broker_redis, 4)
    config = load_config(
        {
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "task_queues": [{"name": "r", "kind": "rq", "url": url, "queues": QUEUES}],
        }
    )
    exporter = Exporter(config)
    selector = 'background_tasks_processed_total{backend="r",status="%s"}'
    with (
        serve_app(create_app(exporter)) as base,
        prometheus_server(scrape_one(base, "/metrics"), tmp_path) as prometheus,
    ):
        wait_until(
            lambda: prometheus.query(selector % "success"), timeout=30, what="the first scrape"
        )
        # two burst workers, one after the other: the counter grows across them, never resets
        for round_, (ok, failing) in enumerate(((10, 2), (5, 1))):
            enqueue(client, ok=ok, failing=failing)
            with worker_process(burst(url, f"afx_tq_prom_{round_}")) as pid:
                wait_until(lambda: _exited(pid), timeout=60, what="a burst worker to exit")

        def increase(status: str) -> float | None:
            # evaluated at the last sample: no extrapolation past it, and the series starts at 0
            (last,) = prometheus.query(f"timestamp({selector % status})")
            at = last["value"][1]
            response = httpx.get(
                f"{prometheus.url}/api/v1/query",
                params={"query": f"increase({selector % status}[10m])", "time": at},
                timeout=5,
            ).json()["data"]["result"]
            return float(response[0]["value"][1]) if response else None

        wait_until(
            lambda: (
                prometheus.query(f"{selector % 'success'} == 15")
                and prometheus.query(f"{selector % 'failure'} == 3")
            ),
            timeout=60,
            what="Prometheus to have the final counts",
        )
        wait_until(lambda: increase("success") == 15, timeout=10, what="increase() of successes")
        assert increase("failure") == 3
        assert prometheus.query(f"resets({selector % 'success'}[10m])")[0]["value"][1] == "0"
    exporter.loaded.engine.close()
