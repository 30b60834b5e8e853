"""A whole-request deadline for httpx, which only has per-operation timeouts.

httpx (and httpcore beneath it) gives every socket read the same timeout, so a server that
drips a byte just inside it keeps one request going for as long as it likes. This network
backend caps every connect, read and write by what is left of the deadline of the request in
progress on the calling thread (`DeadlineNetwork.until`), so a request ends by its deadline
whatever the server does; `cut_off()` shuts down every socket it opened, which wakes a
read blocked on another thread (used when the scrape engine abandons a run).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpcore


class _Now(threading.local):
    """The deadline (monotonic clock) of the request the current thread is sending, and how
    many connections this thread has dialled (so a failed request can tell whether it went
    out on a kept-alive connection)."""

    at: float | None = None
    dialled: int = 0


def _capped(now: _Now, timeout: float | None, expired: type[Exception]) -> float | None:
    """`timeout` capped by what is left of the current request's deadline; `expired` if none."""
    at = now.at
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation is capped by the current request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, network: DeadlineNetwork) -> None:
        self._stream = stream
        self._network = network

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        left = _capped(self._network.now, timeout, httpcore.ReadTimeout)
        return self._stream.read(max_bytes, left)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _capped(self._network.now, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _capped(self._network.now, timeout, httpcore.ConnectTimeout)
        tls = self._stream.start_tls(ssl_context, server_hostname, left)
        return self._network.track(tls)  # a new socket object: track it too

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)

    def shut_down(self) -> None:
        """Wake any read blocked on this stream (from any thread); the reader sees an error."""
        sock = self._stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class DeadlineNetwork(httpcore.NetworkBackend):
    """httpcore's own sync backend with every operation capped by the request's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self.now = _Now()
        self._streams: weakref.WeakSet[DeadlineStream] = weakref.WeakSet()
        self._lock = threading.Lock()  # guards the three fields below; never held during I/O
        self._in_flight = 0
        self._cut = False
        #: what closes the sockets once the last request in flight at the cut has ended
        self._close_later: Callable[[], None] | None = None

    @contextlib.contextmanager
    def until(self, at: float) -> Iterator[None]:
        """Requests sent by this thread inside the block end by `at` (monotonic clock).
        Once the network is cut off, no request starts on it (ConnectError)."""
        with self._lock:
            if self._cut:
                raise httpcore.ConnectError("the connection was cut off")
            self._in_flight += 1
        self.now.at = at
        try:
            yield
        finally:
            self.now.at = None
            close = None
            with self._lock:
                self._in_flight -= 1
                if not self._in_flight:
                    close, self._close_later = self._close_later, None
            if close is not None:  # cut off during this request: it is over, close here
                close()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _capped(self.now, timeout, httpcore.ConnectTimeout)
        self.now.dialled += 1
        return self.track(self._inner.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _capped(self.now, timeout, httpcore.ConnectTimeout)
        self.now.dialled += 1
        return self.track(self._inner.connect_unix_socket(path, left, socket_options))

    def dialled(self) -> int:
        """Connections the calling thread has dialled so far through this network."""
        return self.now.dialled

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def track(self, stream: httpcore.NetworkStream) -> DeadlineStream:
        wrapped = DeadlineStream(stream, self)
        self._streams.add(wrapped)
        return wrapped

    def cut_off(self, close: Callable[[], None]) -> None:
        """Shut down every socket this network opened (an abandoned run's included), start no
        request on it again, and `close()` its sockets: now when no request is in flight, else
        in the thread of the last one, as it ends. Closing a socket under a thread that is in
        a request on it would free the descriptor for the next connection to reuse while the
        thread, preempted between reading the descriptor's number and its poll(), is about to
        wait on it: it then read the new connection. The shutdown ends such a request at once."""
        with self._lock:
            self._cut = True
            if self._in_flight:
                self._close_later, close = close, _nothing
        for stream in list(self._streams):
            stream.shut_down()
        close()


def _nothing() -> None:
    """What the cut does itself when a request's thread will close the sockets."""
