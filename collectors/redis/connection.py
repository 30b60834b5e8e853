"""The collector's own connection: every read and write inside one scrape's deadline, every
scrape's replies inside a byte budget, and a way to drop it from another thread.

redis-py bounds each socket call by a timeout, not a whole request: a server that drips a byte
now and then, or announces a 1 GiB reply, keeps a read going for ever or grows the exporter by
what it sends. The connection classes made by `bounded_class` wrap their socket in a
`BoundedSocket` that, while a scrape holds `Limits`, gives each call only the time left before
the deadline and counts the bytes read against the budget (the announced length of the first
reply is checked before it is read). Parsing stays redis-py's (hiredis when installed).
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from collectors.base import Deadline, SourceDown

_LENGTH_PREFIXES = (b"$", b"=", b"!")  # bulk string, verbatim string, blob error (RESP3)
_HEADER_LIMIT = 32  # "$1073741824\r\n" and more: a longer first line is not a length


class ReplyTooLarge(SourceDown):
    """The server announced or sent more than `max_reply_bytes` in one scrape."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__("bad_response", f"reply of at least {size} bytes (limit {limit})")


class Limits:
    """One scrape's bounds on a connection: the deadline, a cap per socket call, a byte budget.

    Shared by a connection and its socket; `abandon()` makes every later call fail at once and
    shuts the socket down, which also wakes a call blocked in it (without closing the file
    descriptor under another thread: the run that owns it closes it).
    """

    def __init__(self) -> None:
        self.deadline: Deadline | None = None
        self.per_call = 0.0
        self.budget = 0
        self.read = 0
        self.header = b""  # the first line of the first reply, until it is complete
        self.checked = False
        self.abandoned = False
        self.sock: socket.socket | None = None

    def arm(self, deadline: Deadline, per_call: float, budget: int) -> None:
        """Bounds for the next exchange (the connect handshake, or one round trip)."""
        self.deadline, self.per_call, self.budget = deadline, per_call, budget
        self.read, self.header, self.checked = 0, b"", False

    def timeout(self) -> float:
        """Seconds the next socket call may take; raises once the deadline has passed."""
        if self.abandoned:
            raise ConnectionAbortedError("connection abandoned after its scrape's deadline")
        if self.deadline is None:
            raise RuntimeError("Limits.arm() must be called before I/O")
        left = self.deadline.remaining()
        if left <= 0:
            raise TimeoutError("scrape deadline reached")
        return min(left, self.per_call)

    def count(self, data: bytes | memoryview) -> None:
        self.read += len(data)
        if self.read > self.budget:
            raise ReplyTooLarge(self.read, self.budget)
        if not self.checked:
            self._check_announced(bytes(data[:_HEADER_LIMIT]))

    def _check_announced(self, start: bytes) -> None:
        """A bulk reply's length is checked from its first line, before the parser holds any
        of it (the budget alone would let a dripping 1 GiB reply run to the deadline)."""
        self.header += start
        line, sep, _ = self.header.partition(b"\r\n")
        if not sep and len(self.header) < _HEADER_LIMIT:
            return  # the length line is not complete yet
        self.checked = True
        if line[:1] in _LENGTH_PREFIXES and line[1:].isdigit() and int(line[1:]) > self.budget:
            raise ReplyTooLarge(int(line[1:]), self.budget)

    def abandon(self) -> None:
        self.abandoned = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


class BoundedSocket:
    """A socket whose calls obey `Limits`; everything else is the socket's own."""

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        self._sock = sock
        self._limits = limits
        limits.sock = sock

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._sock.settimeout(self._limits.timeout())
        data = self._sock.recv(bufsize, flags)
        if not flags & socket.MSG_PEEK:
            self._limits.count(data)
        return data

    def recv_into(self, buffer: Any, *args: int) -> int:
        self._sock.settimeout(self._limits.timeout())
        received = self._sock.recv_into(buffer, *args)
        if not (len(args) > 1 and args[1] & socket.MSG_PEEK):
            self._limits.count(memoryview(buffer)[:received])
        return received

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._sock.settimeout(self._limits.timeout())
        self._sock.sendall(data, flags)

    def settimeout(self, value: float | None) -> None:
        """Ignored: every call sets its own timeout from the limits."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Bounded:
    """Mixed in before a redis-py connection class: its socket becomes a `BoundedSocket`."""

    limits: Limits

    def __init__(self, **kwargs: Any) -> None:
        self.limits = Limits()
        super().__init__(**kwargs)

    def _connect(self) -> BoundedSocket:
        sock = super()._connect()  # type: ignore[misc]  # redis-py's, untyped
        return BoundedSocket(sock, self.limits)


_CLASSES: dict[type[Any], type[Any]] = {}


def bounded_class(connection_class: type[Any]) -> type[Any]:
    """`connection_class` (redis-py's TCP, TLS or unix connection, or a subclass) with
    `Limits` on its socket."""
    made = _CLASSES.get(connection_class)
    if made is None:
        name = f"Bounded{connection_class.__name__}"
        made = _CLASSES[connection_class] = type(name, (_Bounded, connection_class), {})
    return made
