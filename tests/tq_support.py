"""Helpers shared by the task-queue tests: one collection read back as samples, real workers,
a private redis-server as the broker, and names unique to this run for the shared RabbitMQ.

The machine's Redis is shared with other developers: these tests never write to it. Celery,
RQ and plain-key tests use a redis-server of their own (flushing its dbs is theirs to do);
RabbitMQ queues and exchanges are named with `unique()` and deleted by the test that made them.

A pytest plugin (tests/conftest.py's `pytest_plugins`): its fixtures `broker_redis`,
`redis_db`, `broker_db_url` and `make_queue_collector` are there for every test module.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from collectors.task_queue import TaskQueueCollector
from exporter.config import load_config
from tests.loopback_sources import LoopbackServer
from tests.redis_server import RedisServer, private_redis
from tests.support import ROOT, Collection, started_process, wait_until

#: Part of every broker object name this run makes, so concurrent runs never share one.
RUN = uuid.uuid4().hex[:8]


def unique(name: str) -> str:
    """`afx_tq_<run>_<name>`: a queue, exchange or key name no other test run uses."""
    return f"afx_tq_{RUN}_{name}"


#: The test Celery app's remote-control and event exchanges (tests/tq_celery_app.py).
CONTROL_EXCHANGE = unique("ctl")
EVENT_EXCHANGE = unique("ev")


@pytest.fixture(scope="module")
def broker_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this test module's own (DEBUG allowed: tests stall it on purpose)."""
    with private_redis(
        tmp_path_factory.mktemp("broker"), "--enable-debug-command", "local"
    ) as server:
        yield server


@pytest.fixture
def redis_db(broker_redis: RedisServer):
    """`redis_db(n)`: db `n` of the private broker, emptied before and after the test."""
    import redis

    made: list[redis.Redis] = []

    def make(db: int) -> redis.Redis:
        client = redis.Redis(host="127.0.0.1", port=broker_redis.port, db=db)
        client.flushdb()  # the private server's db: nobody else's data
        made.append(client)
        return client

    yield make
    for client in made:
        client.flushdb()
        client.close()


def broker_url(server: RedisServer, db: int) -> str:
    return f"redis://127.0.0.1:{server.port}/{db}"


@pytest.fixture
def broker_db_url(broker_redis: RedisServer):
    """`broker_db_url(n)`: the URL of db `n` of this module's private broker."""
    return lambda db: broker_url(broker_redis, db)


def target_from(entry: Mapping[str, object]):
    """A Target built through the real config loader (so the tests use the YAML shape)."""
    config = load_config({"task_queues": [dict(entry)]})
    return config.targets["task_queues"][0]


#: One whole collection of a task-queue collector, readable sample by sample.
Scrape = Collection


@pytest.fixture
def make_queue_collector():
    """Collectors made from Targets or config entries, closed (sockets and all) after the test."""
    made: list[TaskQueueCollector] = []

    def make(target) -> TaskQueueCollector:
        if isinstance(target, Mapping):
            target = target_from(target)
        collector = TaskQueueCollector(target)
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.close()


def scrape(collector: TaskQueueCollector) -> Collection:
    return Collection(collector)


@contextlib.contextmanager
def worker_process(args: list[str], env: Mapping[str, str] | None = None) -> Iterator[int]:
    """A real worker process (Celery, RQ) run from the checkout; SIGTERM'd on the way out."""
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AFX_TQ_CONTROL_EXCHANGE": CONTROL_EXCHANGE,
        "AFX_TQ_EVENT_EXCHANGE": EVENT_EXCHANGE,
        **(env or {}),
    }
    with started_process(
        [sys.executable, "-m", *args],
        ready=lambda: True,
        what=f"{args[0]} worker to start",
        log=Path(os.environ.get("TMPDIR", "/tmp")) / f"afx-tq-worker-{os.getpid()}.log",
        stop_timeout=20,
        cwd=ROOT,
        env=full_env,
    ) as proc:
        yield proc.pid


def wait_for_value(collector, name: str, expected: float, what: str, timeout: float = 30, **labels):
    """Scrape until `name{labels}` reads `expected` (workers run asynchronously)."""
    return wait_until(
        lambda: scrape(collector).value(name, **labels) == expected, timeout=timeout, what=what
    )


class WedgingProxy(LoopbackServer):
    """A TCP forwarder to a loopback port whose existing connections can be wedged: after
    `wedge()` their bytes are swallowed (a connection silently dropped by the network) while
    new connections are forwarded as usual. Used as a context manager; closes every socket."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.upstream = port
        self.pairs: list[list[socket.socket]] = []
        self.wedged: set[int] = set()
        self.swallowed = 0
        self.start_thread(self._accept)  # forwarding from the start, as before `with`

    def __enter__(self) -> WedgingProxy:
        return self

    def serve(self, conn: socket.socket, number: int) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        pair = [conn, upstream]
        self.pairs.append(pair)
        for src, dst in ((conn, upstream), (upstream, conn)):
            self.start_thread(self._pump, id(pair), src, dst)

    def _pump(self, pair: int, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if pair in self.wedged:
                    self.swallowed += len(data)
                else:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def wedge(self) -> None:
        self.wedged.update(id(pair) for pair in self.pairs)

    def stop(self) -> None:
        self.sockets.extend(upstream for _, upstream in self.pairs)  # closed with the rest
        super().stop()

    close = stop
