"""The exporter's own key lookups per Redis server: a process-wide, thread-safe ledger.

Redis counts `keyspace_hits`/`keyspace_misses` server-wide, for every client. The task-queue
collectors read queue keys (LLEN on empty Celery priority lists, ZCOUNT on RQ registries...)
on servers that may also be the application's cache, so the Redis collector must take the
exporter's own lookups out of the hit rate it reports ("never measure yourself"). Every
component that sends key-reading commands records here how many hits and misses it caused;
the Redis collector reads the totals together with its INFO.

Ordering: a batch of reads is *in flight* from just before it is sent until its hits and
misses are recorded. The Redis collector's `bracket` waits until no batch is in flight on its
server and keeps new ones from starting while its INFO runs, so every recorded lookup falls on
the right side of that INFO. Both waits are bounded (`GATE_WAIT_SECONDS` and the deadline): a
batch still in flight when INFO stops waiting (the bracket reports `ordered=False`), or one that
stopped waiting for an INFO running over that long, may be counted an interval late; the Redis
collector then holds its counters rather than let them go back.

A server is identified by its address as configured (`host:port`, or the unix socket path),
not by the db: two spellings of one server (`localhost` and `127.0.0.1`) are two servers here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

#: Longest wait of a batch for a running INFO, and of INFO for the batches in flight.
GATE_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class OwnLookups:
    """The exporter's recorded lookups on one server, since the process started."""

    hits: int = 0
    misses: int = 0
    #: True when no batch was in flight at the reading (it is exact for the INFO it brackets).
    ordered: bool = True


@dataclass
class _Server:
    hits: int = 0
    misses: int = 0
    in_flight: int = 0
    info_running: int = 0


def server_identity(connection_kwargs: Mapping[str, Any]) -> str:
    """The server a redis-py connection's settings point at: `host:port` or `unix:PATH`."""
    path = connection_kwargs.get("path")
    if path:
        return f"unix:{path}"
    host = str(connection_kwargs.get("host") or "localhost").lower().strip("[]")
    return f"{host}:{int(connection_kwargs.get('port') or 6379)}"


class Ledger:
    """Hits and misses the exporter caused, per server; safe to use from any thread."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._servers: dict[str, _Server] = {}

    def _server(self, server: str) -> _Server:
        found = self._servers.get(server)
        if found is None:
            found = self._servers[server] = _Server()
        return found

    @contextmanager
    def batch(self, server: str, wait: float) -> Iterator[Recorder]:
        """Around one batch of reads: waits (at most `wait`, capped) for a running INFO on the
        server to end, then counts as in flight until the recorder's counts are added."""
        recorder = Recorder()
        with self._changed:
            state = self._server(server)
            _wait_for(self._changed, lambda: not state.info_running, wait)
            state.in_flight += 1
        try:
            yield recorder
        finally:
            with self._changed:
                state.in_flight -= 1
                state.hits += recorder.hits
                state.misses += recorder.misses
                self._changed.notify_all()

    @contextmanager
    def bracket(self, server: str, wait: float) -> Iterator[OwnLookups]:
        """Around the Redis collector's INFO: waits (at most `wait`, capped) for the batches in
        flight, holds new ones back while INFO runs, and yields the totals recorded so far."""
        with self._changed:
            state = self._server(server)
            ordered = _wait_for(self._changed, lambda: not state.in_flight, wait)
            state.info_running += 1
            reading = OwnLookups(state.hits, state.misses, ordered)
        try:
            yield reading
        finally:
            with self._changed:
                state.info_running -= 1
                self._changed.notify_all()

    def totals(self, server: str) -> OwnLookups:
        with self._changed:
            state = self._server(server)
            return OwnLookups(state.hits, state.misses, not state.in_flight)


@dataclass
class Recorder:
    """Where one batch adds the hits and misses its replies showed."""

    hits: int = 0
    misses: int = 0

    def add(self, hits: int, misses: int) -> None:
        self.hits += hits
        self.misses += misses


def _wait_for(condition: threading.Condition, ready: Any, wait: float) -> bool:
    """Wait on `condition` (held) until `ready()`, at most `wait` (capped); True if ready."""
    limit = time.monotonic() + max(0.0, min(wait, GATE_WAIT_SECONDS))
    while not ready():
        left = limit - time.monotonic()
        if left <= 0:
            return False
        condition.wait(left)
    return True


#: The exporter's one ledger: every collector in the process records into it.
LEDGER = Ledger()
