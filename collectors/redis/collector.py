"""The Redis collector: one instance on one long-lived connection of its own.

Each scrape costs one round trip: `INFO ALL` and (Redis >= 7) `LATENCY HISTOGRAM` are sent
together and both replies read back, each read capped by the scrape deadline. In embedded mode
the application hands in its `redis.Redis` client (`from_client`): the collector opens its own
connection with that client's settings (address, auth, TLS, db), so it never takes a connection
from the application's pool nor changes the timeouts of one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import redis
from prometheus_client.metrics_core import Metric
from redis.backoff import NoBackoff
from redis.exceptions import AuthorizationError
from redis.retry import Retry

from collectors.base import ScrapeContext, SourceCollector, classify_error
from collectors.redis.families import CACHE_UP, Lookups, info_families, lookups
from collectors.redis.parsing import parse_info, parse_latency_histogram, text
from collectors.redis.settings import Options, Target, connection_settings
from collectors.secret import url_password


class RedisCollector(SourceCollector):
    """One Redis instance on one long-lived connection of its own."""

    kind = "redis"

    def __init__(
        self,
        name: str,
        connection: Any,
        options: Options,
        *,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(name, secrets=secrets)
        self.options = options
        self._connection: Any = connection
        self._lock = threading.Lock()
        self._previous: Lookups | None = None
        self._histogram_supported: bool | None = None  # unknown until the server answers
        self._packed_info = connection.pack_commands([("INFO", "ALL")])
        self._packed_both = connection.pack_commands([("INFO", "ALL"), ("LATENCY", "HISTOGRAM")])

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        with self._lock:
            raw, histogram_reply = self._round_trip(ctx)
            info = parse_info(text(raw))
            histograms = None
            if histogram_reply is not None:
                histograms = parse_latency_histogram(histogram_reply)
            families = info_families(
                info,
                self.name,
                ctx=ctx,
                command_limit=self.options.command_limit,
                histogram_command_limit=self.options.histogram_command_limit,
                previous=self._previous,
                histograms=histograms,
            )
            self._previous = lookups(info)
        if self.options.latency_histogram and self._histogram_supported is False:
            ctx.note("LATENCY HISTOGRAM unavailable (Redis < 7): no duration histogram")
        yield from families

    def _round_trip(self, ctx: ScrapeContext) -> tuple[Any, Any]:
        """Both replies on the kept connection; one fresh try if it died (server restart)."""
        kept = _connected(self._connection)
        try:
            return self._exchange(ctx)
        except redis.ConnectionError:
            if not kept or ctx.deadline.expired():
                raise
        return self._exchange(ctx)

    def _exchange(self, ctx: ScrapeContext) -> tuple[Any, Any]:
        conn, deadline, options = self._connection, ctx.deadline, self.options
        try:
            if not _connected(conn):
                conn.socket_connect_timeout = deadline.timeout(options.connect_timeout_seconds)
                conn.socket_timeout = deadline.timeout(options.read_timeout_seconds)
                conn.connect()
                self._histogram_supported = None  # the server may have been upgraded
            with_histogram = options.latency_histogram and self._histogram_supported is not False
            _cap(conn, deadline.timeout(options.read_timeout_seconds))
            conn.send_packed_command(self._packed_both if with_histogram else self._packed_info)
            raw = conn.read_response(disable_decoding=True)
        except BaseException:
            conn.disconnect()
            raise
        if not with_histogram:
            return raw, None
        try:
            _cap(conn, deadline.timeout(options.read_timeout_seconds))
            reply = conn.read_response(disable_decoding=True)
        except redis.ResponseError:  # ERR unknown subcommand: Redis < 7
            self._histogram_supported = False
            return raw, None
        except BaseException:
            conn.disconnect()
            raise
        self._histogram_supported = True
        return raw, reply

    def down_families(self) -> Sequence[Metric]:
        return [CACHE_UP.single(0.0, self.name)]

    def classify(self, exc: BaseException) -> str:
        if isinstance(exc, redis.AuthenticationError | AuthorizationError):
            return "auth"
        if isinstance(exc, redis.ResponseError) and str(exc).startswith(("NOAUTH", "NOPERM")):
            return "auth"
        if isinstance(exc, redis.TimeoutError):
            return "timeout"
        reason = classify_error(exc)
        if reason == "error" and isinstance(exc, redis.ConnectionError):
            return "connection"
        if reason == "error" and isinstance(exc, redis.ResponseError):
            return "bad_response"
        return reason

    def close(self) -> None:
        with self._lock:
            self._connection.disconnect()


def _connected(conn: Any) -> bool:
    return conn._sock is not None


def _cap(conn: Any, seconds: float) -> None:
    """The socket's timeout for the next send or read: redis-py reads with the socket's own
    timeout (its `read_response(timeout=)` is recent, this works on every version)."""
    sock = conn._sock
    if sock is not None:
        sock.settimeout(seconds)


def _own_connection(connection_class: Any, kwargs: Mapping[str, Any]) -> Any:
    """A connection that fails fast: the scrape deadline, not redis-py's retries, bounds it."""
    settings = dict(kwargs)
    settings["retry"] = Retry(NoBackoff(), 0)
    return connection_class(**settings)


def build(options: Options | None, target: Target) -> RedisCollector:
    """A collector for one configured instance. Dials nothing: it connects at its first scrape."""
    effective = target.effective_options(options or Options())
    connection_class, kwargs = connection_settings(target, effective)
    secrets = [
        target.password.reveal() if target.password else "",
        url_password(target.url) or "",
    ]
    return RedisCollector(
        target.name, _own_connection(connection_class, kwargs), effective, secrets=secrets
    )


def from_client(
    client: redis.Redis, name: str = "cache", options: Options | None = None
) -> SourceCollector:
    """Embedded mode: a collector for the application's own Redis client.

    It reads the client's connection settings and keeps one connection of its own, so the
    application's pool and its timeouts are left alone. Cluster clients are not supported.
    """
    effective = options or Options()
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(
        socket_connect_timeout=effective.connect_timeout_seconds,
        socket_timeout=effective.read_timeout_seconds,
    )
    password = kwargs.get("password")
    return RedisCollector(
        name,
        _own_connection(pool.connection_class, kwargs),
        effective,
        secrets=[password] if isinstance(password, str) else [],
    )
