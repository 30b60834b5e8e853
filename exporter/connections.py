"""A guard against slowloris: connections that never finish their request headers are closed.

uvicorn times out an idle keep-alive connection, but not one that is still sending its
request headers: a client that connects and sends nothing, or one byte a minute, holds a file
descriptor forever (measured: 21,000 such connections exhaust the FD limit and every scrape
fails). uvicorn's `limit_concurrency` does not help, it answers 503 to *real* requests once
enough half-open connections are held.

`guarded_protocol(header_timeout, max_connections)` makes a uvicorn httptools protocol that:

- closes a connection whose request headers are not complete `header_timeout` seconds after it
  opened, or after the first byte of a later request on a kept-alive connection;
- keeps at most `max_connections` open: a new connection beyond that closes the oldest one
  still waiting for its headers (a scraper sends its headers at once, so it is never the
  oldest waiting), or itself when every open connection is busy with a request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a request-header deadline and a connection cap (see module doc)."""

    header_timeout: float = 5.0
    max_connections: int = 1024
    #: Connections of this server still waiting for request headers, oldest first (a dict
    #: keeps insertion order). One per protocol class, i.e. per `guarded_protocol()` call.
    waiting: dict[GuardedProtocol, asyncio.TimerHandle] = {}
    #: Connections closed for each reason, for tests and the benchmark.
    closed: dict[str, int] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_headers()
        if len(self.connections) > self.max_connections:
            oldest = next(iter(self.waiting))
            oldest._drop("over_limit")

    def data_received(self, data: bytes) -> None:
        if self not in self.waiting and (self.cycle is None or self.cycle.response_complete):
            self._wait_for_headers()  # the first bytes of a next request on a kept-alive one
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _wait_for_headers(self) -> None:
        loop = asyncio.get_running_loop()
        self.waiting[self] = loop.call_later(self.header_timeout, self._drop, "header_timeout")

    def _stop_waiting(self) -> None:
        timer = self.waiting.pop(self, None)
        if timer is not None:
            timer.cancel()

    def _drop(self, reason: str) -> None:
        self._stop_waiting()
        self.closed[reason] = self.closed.get(reason, 0) + 1
        self.connections.discard(self)
        if not self.transport.is_closing():
            self.transport.abort()


def guarded_protocol(header_timeout: float, max_connections: int) -> type[GuardedProtocol]:
    """A protocol class for `uvicorn.Config(http=...)` with its own limits and bookkeeping."""
    attributes: dict[str, Any] = {
        "header_timeout": header_timeout,
        "max_connections": max_connections,
        "waiting": {},
        "closed": {},
    }
    return type("GuardedProtocol", (GuardedProtocol,), attributes)
