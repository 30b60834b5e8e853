"""A slowloris client for tests and benchmarks: half-open connections held against a port."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from pathlib import Path

#: The start of a request whose headers never end.
PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class Slowloris:
    """Holds `count` half-open connections to 127.0.0.1:`port` until stopped (a context
    manager), each sending PARTIAL and nothing more. With `reopen`, a new one replaces each
    that the server closes. Records how long the server let each one live."""

    def __init__(self, port: int, count: int, *, reopen: bool = True) -> None:
        self.port, self.count, self.reopen = port, count, reopen
        self.opened = 0
        self.lifetimes: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def held(self) -> int:
        """Connections open now, as the client sees them."""
        return self.opened - len(self.lifetimes)

    def __enter__(self) -> Slowloris:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _open(self, selector: selectors.BaseSelector) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", self.port))
        selector.register(sock, selectors.EVENT_WRITE, (time.monotonic(), False))
        self.opened += 1

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        for _ in range(self.count):
            self._open(selector)
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                opened_at, sent = key.data
                if not sent:  # connected: send the start of a request, never its end
                    with contextlib.suppress(OSError):
                        sock.send(PARTIAL)
                    selector.modify(sock, selectors.EVENT_READ, (opened_at, True))
                    continue
                with contextlib.suppress(OSError):
                    if sock.recv(4096):
                        continue
                selector.unregister(sock)
                sock.close()
                self.lifetimes.append(time.monotonic() - opened_at)
                if self.reopen:
                    self._open(selector)
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))
