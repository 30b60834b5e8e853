"""Small helpers shared by the database collector tests."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import sqlalchemy

from collectors.base import CollectionResult, Deadline, SourceCollector
from exporter.app import create_app
from exporter.config import load_config
from exporter.state import Exporter
from tests.support import scrape_headers, serve_app


def collect(collector: SourceCollector, seconds: float = 10.0) -> CollectionResult:
    return collector.run(Deadline.after(seconds))


def value(result: CollectionResult, name: str, **labels: str) -> float | None:
    """The sample `name` whose labels include `labels`, or None."""
    for family in result.families:
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def names(result: CollectionResult) -> set[str]:
    return {sample.name for family in result.families for sample in family.samples}


def table_values(result: CollectionResult, name: str) -> dict[str, float]:
    return {
        s.labels["table"]: float(s.value)
        for f in result.families
        for s in f.samples
        if s.name == name
    }


@contextlib.contextmanager
def engine_for(url: str, **kwargs) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(url, **kwargs)
    try:
        yield engine
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    with engine_for(url, poolclass=sqlalchemy.pool.NullPool) as engine, engine.begin() as conn:
        for statement in statements:
            conn.execute(sqlalchemy.text(statement))


def scalar(url: str, statement: str, **params) -> object:
    with engine_for(url, poolclass=sqlalchemy.pool.NullPool) as engine, engine.connect() as conn:
        return conn.execute(sqlalchemy.text(statement), params).scalar()


def admin(url: str, statement: str) -> None:
    """A statement that cannot run in a transaction (CREATE / DROP DATABASE)."""
    with engine_for(url, isolation_level="AUTOCOMMIT") as engine, engine.connect() as conn:
        conn.execute(sqlalchemy.text(statement))


@contextlib.contextmanager
def own_database(url: str, prefix: str) -> Iterator[str]:
    """A database of this test's own beside the one of `url` (nobody else moves its
    server-wide counters); its URL. Dropped afterwards, its sessions with it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin(url, f"CREATE DATABASE {name}")
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin(url, f"DROP DATABASE {name} WITH (FORCE)")


def transaction_counts(url: str) -> tuple[int, int]:
    """pg_stat_database's xact_commit, xact_rollback of the database of `url`, read from
    another session (so the reading is not among them)."""
    base, name = url.rsplit("/", 1)
    with engine_for(f"{base}/postgres", poolclass=sqlalchemy.pool.NullPool) as engine:
        with engine.connect() as conn:
            row = conn.execute(
                sqlalchemy.text(
                    "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = :n"
                ),
                {"n": name},
            ).one()
    return int(row[0]), int(row[1])


SCRAPE_HEADERS = scrape_headers(3, text=True)


def scrape_while_sampling(
    name: str,
    url: str,
    application_name: str,
    sample: Callable[[], None],
    scrapes: int = 500,
    clients: int = 4,
) -> None:
    """Serve one database target over real HTTP and scrape it `scrapes` times from `clients`
    threads, calling `sample()` every 50 ms while they run and once after they finish."""
    config = load_config(
        {
            "databases": [{"name": name, "url": url, "application_name": application_name}],
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
        },
        env={},
    )
    exporter = Exporter(config)
    try:
        with serve_app(create_app(exporter)) as base, httpx.Client(timeout=30) as client:

            def scrape_many(count: int) -> None:
                for _ in range(count):
                    response = client.get(f"{base}/metrics", headers=SCRAPE_HEADERS)
                    assert response.status_code == 200

            threads = [
                threading.Thread(target=scrape_many, args=(scrapes // clients,))
                for _ in range(clients)
            ]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                sample()
                time.sleep(0.05)
            for t in threads:
                t.join()
            sample()
    finally:
        exporter.loaded.engine.close()


class Blackhole:
    """A loopback TCP forwarder to `upstream` that can stop forwarding in both directions
    without closing anything, as a network that silently drops a connection does.

    One selector thread serves every connection, so the proxy itself adds one thread however
    many connections the client opens; `held()` counts the sockets it holds, so a test can
    tell the client's descriptors from the proxy's.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.forwarding = threading.Event()
        self.forwarding.set()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="blackhole", daemon=True)
        self._thread.start()

    def url(self, url: str) -> str:
        """`url` with host and port replaced by the proxy's."""
        parsed = sqlalchemy.engine.make_url(url)
        return parsed.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def drop(self) -> None:
        """Stop forwarding (both ways) and stop answering; sockets stay open."""
        self.forwarding.clear()

    def restore(self) -> None:
        self.forwarding.set()

    def held(self) -> int:
        return len(self._peers)

    def _run(self) -> None:
        while not self._stop:
            if not self.forwarding.is_set():
                self._accept_silently()
                time.sleep(0.02)
                continue
            for key, _ in self._selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    self._accept()
                elif sock in self._peers:
                    self._pump(sock)

    def _accept_silently(self) -> None:
        # the network is gone: a new connection is taken (as a kernel would complete the
        # handshake) and never answered
        with contextlib.suppress(BlockingIOError):
            client, _ = self.listener.accept()
            self._peers[client] = client

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(True)
            sock.settimeout(5)
        self._peers[client], self._peers[server] = server, client
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(server, selectors.EVENT_READ)

    def _pump(self, sock: socket.socket) -> None:
        other = self._peers[sock]
        try:
            data = sock.recv(65536)
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        self._forget(sock)
        self._forget(other)

    def _forget(self, sock: socket.socket) -> None:
        if self._peers.pop(sock, None) is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        for sock in list(self._peers):
            sock.close()
        self._peers.clear()
        self._selector.close()
        self.listener.close()
