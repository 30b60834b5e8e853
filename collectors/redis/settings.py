"""What the config says about a Redis instance, and the redis-py settings it becomes (no I/O).

`connection_settings(target, options)` is shared with the task-queue collector, so a Celery or
RQ queue on a `rediss://` server gets the same TLS, auth and timeout settings as the cache.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.connection
from redis.connection import SSLConnection

from collectors.checks import (
    check_existing_file,
    check_limit,
    check_non_negative,
    check_positive,
)
from collectors.secret import Secret

_parse_url: Any = redis.connection.parse_url  # untyped in redis-py
_SCHEMES = ("redis", "rediss", "unix")
#: INFO ALL alone is tens of kilobytes: a smaller cap would fail every scrape.
_SMALLEST_REPLY_CAP = 64 * 1024


def check_redis_url(value: str) -> str:
    """A redis://, rediss:// or unix:// URL; the message never repeats the URL (passwords)."""
    problem = "not a valid Redis URL (expected redis://HOST:PORT/DB, rediss://... or unix://PATH)"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        if parts.scheme not in _SCHEMES:
            raise ValueError(problem)
        if parts.scheme == "unix" and not parts.path:
            raise ValueError(problem)
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError(problem)
        _parse_url(value)
    except ValueError:
        raise ValueError(problem) from None
    return value


def check_reply_cap(value: int) -> int:
    if value < _SMALLEST_REPLY_CAP:
        raise ValueError(f"must be at least {_SMALLEST_REPLY_CAP} (INFO ALL is tens of KiB)")
    return value


@dataclass(frozen=True)
class Options:
    """`collectors.redis:` settings, and what an embedded `from_client` collector uses."""

    #: Pipeline `LATENCY HISTOGRAM` with `INFO ALL` (Redis >= 7) for
    #: `cache_operation_duration_seconds`.
    latency_histogram: bool = True
    #: Per-command series are kept for this many commands (most calls first); the rest are
    #: summed under `command="other"` and counted in `afirgen_exporter_series_dropped`.
    command_limit: int = field(default=40, metadata={"check": check_limit})
    #: The duration histogram has ~10 series per command: it keeps fewer commands (most calls
    #: first), the others summed under `command="other"`.
    histogram_command_limit: int = field(default=10, metadata={"check": check_limit})
    #: Caps on one TCP/TLS connect and on one reply, both also capped by the scrape deadline.
    connect_timeout_seconds: float = field(default=3.0, metadata={"check": check_positive})
    read_timeout_seconds: float = field(default=5.0, metadata={"check": check_positive})
    #: Bytes one scrape may read (both replies together): a server announcing or sending more
    #: is reported as `bad_response` before the exporter holds it in memory.
    max_reply_bytes: int = field(default=4 * 1024 * 1024, metadata={"check": check_reply_cap})


@dataclass(frozen=True)
class Target:
    """One entry of `redis:`. Unset tuning keys fall back to `collectors.redis:`."""

    name: str
    url: str = field(metadata={"check": check_redis_url})
    username: str | None = None
    password: Secret | None = None
    password_file: str | None = field(default=None, metadata={"secret_file_for": "password"})
    #: Database to SELECT (overrides the URL's); INFO is server-wide, so this rarely matters.
    db: int | None = field(default=None, metadata={"check": check_non_negative})
    # TLS (rediss:// only)
    ca_file: str | None = field(default=None, metadata={"check": check_existing_file})
    cert_file: str | None = field(default=None, metadata={"check": check_existing_file})
    key_file: str | None = field(default=None, metadata={"check": check_existing_file})
    server_name: str | None = None
    verify: bool = True
    connect_timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    read_timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    #: This instance's own time limit inside the scrape deadline (applied by the engine).
    timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    latency_histogram: bool | None = None
    command_limit: int | None = field(default=None, metadata={"check": check_limit})
    histogram_command_limit: int | None = field(default=None, metadata={"check": check_limit})

    def __post_init__(self) -> None:
        tls_keys = [
            key
            for key in ("ca_file", "cert_file", "key_file", "server_name")
            if getattr(self, key) is not None
        ]
        if not self.verify:
            tls_keys.append("verify")
        if tls_keys and urlsplit(self.url).scheme != "rediss":
            raise ValueError(f"{', '.join(tls_keys)} apply only to rediss:// URLs")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file must be set together")

    def effective_options(self, defaults: Options) -> Options:
        """`defaults` with this target's own settings applied over them."""
        overrides = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(Options)
            if getattr(self, f.name, None) is not None
        }
        return dataclasses.replace(defaults, **overrides)


class _NamedSSLConnection(SSLConnection):
    """redis-py's TLS connection, checking the certificate against `server_name` (SNI too)."""

    def __init__(self, *, server_name: str | None = None, **kwargs: Any) -> None:
        self.server_name = server_name
        super().__init__(**kwargs)

    def _wrap_socket_with_ssl(self, sock: Any) -> Any:
        wrap: Any = super()._wrap_socket_with_ssl
        if not self.server_name:
            return wrap(sock)
        host, self.host = self.host, self.server_name  # redis-py names the peer by self.host
        try:
            return wrap(sock)
        finally:
            self.host = host


def connection_settings(target: Target, options: Options) -> tuple[type[Any], dict[str, Any]]:
    """The redis-py connection class and keyword arguments for `target` (no I/O)."""
    kwargs: dict[str, Any] = dict(_parse_url(target.url))
    connection_class: type[Any] = kwargs.pop("connection_class", redis.Connection)
    if target.username is not None:
        kwargs["username"] = target.username
    if target.password is not None:
        kwargs["password"] = target.password.reveal()
    if target.db is not None:
        kwargs["db"] = target.db
    if issubclass(connection_class, SSLConnection):
        connection_class = _NamedSSLConnection
        kwargs.update(
            ssl_ca_certs=target.ca_file,
            ssl_certfile=target.cert_file,
            ssl_keyfile=target.key_file,
            ssl_cert_reqs="required" if target.verify else "none",
            ssl_check_hostname=target.verify,
            server_name=target.server_name,
        )
    kwargs.update(
        socket_connect_timeout=options.connect_timeout_seconds,
        socket_timeout=options.read_timeout_seconds,
        client_name="afirgen-exporter",
    )
    return connection_class, kwargs
