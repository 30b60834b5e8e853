"""Loopback sources for the fault tests: a slow HTTP server, a silent TCP listener, a server
that drips its answer, and `LoopbackServer`, the thread-per-connection server they and the
other socket servers of the tests (redis_server.RespServer, tq_support.WedgingProxy) are
built on.

All are real servers on 127.0.0.1 run in threads; the tests and benchmarks/wedged.py use them
as the far end of a real collector (a model server) or of a test collector's socket.
"""

from __future__ import annotations

import contextlib
import itertools
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class SlowHealthHandler(BaseHTTPRequestHandler):
    """Answers every GET with 200 `{"status": "ok"}` after the server's `delay` seconds."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        time.sleep(getattr(self.server, "delay", 0.0))
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        return


@contextlib.contextmanager
def slow_http_server(delay: float, port: int = 0) -> Iterator[int]:
    """A real HTTP server on loopback whose every answer takes `delay` seconds; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", port), SlowHealthHandler)
    server.daemon_threads = True
    server.delay = delay  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class SilentListener:
    """A TCP listener that accepts every connection and never sends a byte.

    Accepted sockets stay open (the client side stays wedged, as behind a network that
    silently drops packets) until the client closes its end; then they are closed here too,
    so the only sockets left are the ones a client still holds. `accepted` counts them all.
    """

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self._server.setblocking(False)
        self.port: int = self._server.getsockname()[1]
        self.accepted = 0
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._server, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._server:
                    with contextlib.suppress(BlockingIOError):
                        conn, _ = self._server.accept()
                        conn.setblocking(False)
                        self._selector.register(conn, selectors.EVENT_READ)
                        self.accepted += 1
                    continue
                try:
                    data = sock.recv(4096)  # what a client sends is read and ignored
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._selector.unregister(sock)
                    sock.close()

    def open_connections(self) -> int:
        return len(self._selector.get_map()) - 1

    def __enter__(self) -> SilentListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


class LoopbackServer:
    """A TCP server on a free 127.0.0.1 port whose every connection is served by
    `serve(conn, number)` (`number` counts from 1) in a thread of its own.

    `with` starts it; leaving it, or `stop()`, sets `stopping`, closes the listener and every
    accepted socket and joins every thread, so a test leaves nothing running behind it.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # closing a listener does not wake accept(): poll
        self.port: int = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.connections = 0
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []

    def serve(self, conn: socket.socket, number: int) -> None:
        raise NotImplementedError

    def start_thread(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self.sockets.append(conn)
            self.start_thread(self.serve, conn, self.connections)

    def __enter__(self) -> Self:
        self.start_thread(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        if self.threads:  # the accept loop first: no connection arrives after it has ended
            self.threads[0].join(timeout=2)
        for conn in self.sockets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in another thread
            conn.close()
        for thread in self.threads:
            thread.join(timeout=2)


class DripServer(LoopbackServer):
    """An HTTP server on loopback that answers one byte every `interval` seconds.

    Every read gets a byte well within any per-read timeout, so only a whole-request deadline
    ends such a request. How an answer ends (`ending`): `whole`, the last byte too, then the
    next request of the connection; `stall`, all but the last byte, then nothing; `forever`,
    a header line that never ends (h11 gives up after 16 KiB: half an hour).

    The first `drip_connections` connections drip (-1: all of them); later ones get the whole
    answer at once, so a test can tell a client stuck on its first connection from one that
    dialled afresh. `heal()` does the same from now on: new connections are answered at once
    while the ones already dripping keep dripping (a stuck connection stays stuck). With
    `hang_up`, every connection is closed as soon as a request has arrived, unanswered.
    """

    ANSWER = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
        b'{"status": "UP"}'
    )
    ENDINGS = ("whole", "stall", "forever")

    def __init__(
        self,
        interval: float = 0.2,
        drip_connections: int = -1,
        hang_up: bool = False,
        *,
        ending: str = "whole",
    ) -> None:
        if ending not in self.ENDINGS:
            raise ValueError(f"ending must be one of {self.ENDINGS}, not {ending!r}")
        super().__init__()
        self.interval = interval
        self.hang_up = hang_up
        self.drip_connections = drip_connections
        self.ending = ending
        self.url = f"http://127.0.0.1:{self.port}"

    def heal(self) -> None:
        """Connections from now on get the whole answer at once."""
        dripping = self.drip_connections
        self.drip_connections = (
            self.connections if dripping < 0 else min(dripping, self.connections)
        )

    def serve(self, conn: socket.socket, number: int) -> None:
        drip = self.drip_connections < 0 or number <= self.drip_connections
        with contextlib.suppress(OSError), conn:
            self._answering(conn, drip)

    def idle(self, timeout: float = 5.0) -> bool:
        """Wait until every connection the clients closed is closed here too."""
        deadline = time.monotonic() + timeout
        for thread in self.threads[1:]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads[1:])

    def _answering(self, conn: socket.socket, drip: bool) -> None:
        conn.settimeout(0.2)
        while not self.stopping.is_set():  # every request on this connection
            request = b""
            while b"\r\n\r\n" not in request and not self.stopping.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                request += chunk
            if self.hang_up:
                return
            if not drip:
                conn.sendall(self.ANSWER)
                continue
            for byte in self._dripped():
                if self.stopping.wait(self.interval):
                    return
                conn.sendall(bytes([byte]))
            if self.ending != "whole":
                self.stopping.wait()
                return

    def _dripped(self) -> Iterator[int]:
        if self.ending == "forever":
            return itertools.chain(b"HTTP/1.1 200 OK\r\nX-Drip: ", itertools.repeat(97))
        return iter(self.ANSWER if self.ending == "whole" else self.ANSWER[:-1])
