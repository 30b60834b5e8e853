"""Loopback sources for the fault tests: a slow HTTP server, a silent TCP listener, a server
that drips its answer, and `LoopbackServer`, the thread-per-connection server they and the
other socket servers of the tests (model_server_apps.DripServer, tq_support.WedgingProxy) are
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
    """An HTTP server on loopback that drips its answer one byte every `interval` seconds.

    Every read gets a byte well within any per-read timeout, so only a whole-request deadline
    ends such a request. It drips all but the last byte and then stalls, or with `forever` a
    header line that never ends (h11 gives up after 16 KiB: half an hour). After `heal()`, new connections get the whole answer at once, while
    the connections already dripping keep dripping (a stuck connection stays stuck).
    """

    ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"status": "ok"}'

    def __init__(self, interval: float = 0.2, *, forever: bool = False) -> None:
        super().__init__()
        self.interval = interval
        self.forever = forever
        self.healed = threading.Event()

    def heal(self) -> None:
        self.healed.set()

    def serve(self, conn: socket.socket, number: int) -> None:
        dripping = not self.healed.is_set()
        with conn:
            try:
                request = conn.recv(65536)
                while not dripping and request:  # healed: answer each request of the connection
                    conn.sendall(self.ANSWER)
                    request = conn.recv(65536)
                if not dripping:
                    return
                drip = itertools.chain(b"HTTP/1.1 200 OK\r\nX-Drip: ", itertools.repeat(97))
                for byte in drip if self.forever else self.ANSWER[:-1]:  # never the last byte
                    if self.stopping.wait(self.interval):
                        return
                    conn.sendall(bytes([byte]))
                self.stopping.wait()
            except OSError:
                return
