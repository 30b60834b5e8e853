"""The Redis collector: one instance on one long-lived connection of its own.

Each scrape costs one round trip: `INFO ALL` and (Redis >= 7) `LATENCY HISTOGRAM` are sent
together and both replies read back, the whole exchange inside the scrape deadline and
`max_reply_bytes` (see `collectors.redis.connection`). Once a connection's server has answered
LATENCY HISTOGRAM (Redis >= 7), INFO asks for `INFO_SECTIONS`, all of INFO ALL that is read
(a server that refuses them, or leaves commandstats out, gets INFO ALL again). In embedded mode
the application hands in its `redis.Redis` client (`from_client`): the collector opens its own
connection with that client's settings (address, auth, TLS, db), so it never takes a connection
from the application's pool nor changes the timeouts of one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis
from prometheus_client.metrics_core import Metric
from redis.backoff import NoBackoff
from redis.exceptions import AuthorizationError, InvalidResponse
from redis.retry import Retry

from collectors.base import Deadline, ScrapeContext, SourceCollector, classify_error
from collectors.own_lookups import LEDGER, server_identity
from collectors.redis.connection import bounded_class
from collectors.redis.families import CACHE_UP, info_families
from collectors.redis.interval import LookupInterval
from collectors.redis.parsing import parse_info, parse_latency_histogram, text
from collectors.redis.reuse import Reuse
from collectors.redis.settings import Options, Target, connection_settings
from collectors.secret import url_password

#: What `INFO ALL` holds but latencystats (Redis >= 7 takes several sections): the per-command
#: latency percentiles are read by nothing here and cost the server most of INFO's time.
INFO_SECTIONS = ("default", "commandstats")


class RedisCollector(SourceCollector):
    """One Redis instance on one long-lived connection of its own.

    A run checks the kept connection out and back in; the lock guards only that bookkeeping
    and is never held during I/O, so `abandon()` and `close()` never wait for a stuck run. A
    run that finds the kept connection in use (by a run past its deadline) dials a new one.
    """

    collector = "redis"

    def __init__(
        self,
        name: str,
        connect: Callable[[], Any],
        options: Options,
        *,
        server: str,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(name, secrets=secrets)
        self.options = options
        #: The server's identity in the ledger of the exporter's own lookups.
        self.server = server
        self._connect = connect
        self._lock = threading.Lock()
        self._idle: Any = connect()  # the kept connection; None while a run holds it
        self._busy: dict[int, tuple[Any, Deadline]] = {}  # id -> (connection, run deadline)
        self._resp2 = False  # the server refused HELLO 3: RESP2 from now on
        self._interval = LookupInterval()
        self._reuse = Reuse()  # what unchanged INFO lines and histogram entries were made into
        self._histogram_supported: bool | None = None  # unknown until the server answers
        #: whether the server takes INFO_SECTIONS (None: not asked yet on this connection)
        self._sections: bool | None = None
        pack = self._idle.pack_commands
        self._packed_info = pack([("INFO", "ALL")])
        self._packed_both = pack([("INFO", "ALL"), ("LATENCY", "HISTOGRAM")])
        self._packed_sections = pack([("INFO", *INFO_SECTIONS), ("LATENCY", "HISTOGRAM")])

    def fetch(self, ctx: ScrapeContext) -> list[Metric]:
        conn = self._checkout(ctx.deadline)
        try:
            # the exporter's own lookups recorded by now, read with INFO as one step: task-queue
            # reads on this server wait for INFO's reply, and INFO for theirs
            with LEDGER.bracket(self.server, ctx.deadline.timeout() / 4) as own:
                raw, histogram_reply = self._round_trip(conn, ctx)
        finally:
            self._checkin(conn)
        info = parse_info(text(raw))
        histograms = None
        skipped: list[str] = []
        if histogram_reply is not None:
            histograms = parse_latency_histogram(histogram_reply, skipped, self._reuse.histograms)
        families = info_families(
            info,
            self.name,
            ctx=ctx,
            command_limit=self.options.command_limit,
            histogram_command_limit=self.options.histogram_command_limit,
            interval=self._interval,
            own=own,
            histograms=histograms,
            skipped=skipped,
            reuse=self._reuse,
        )
        if not own.ordered:
            ctx.note("own lookups still in flight at INFO: counted in the next interval")
        if self.options.latency_histogram and self._histogram_supported is False:
            ctx.note("LATENCY HISTOGRAM unavailable (Redis < 7): no duration histogram")
        return families  # a list, not a generator: no resume per family

    def _checkout(self, deadline: Deadline) -> Any:
        with self._lock:
            conn, self._idle = self._idle, None
            if conn is None:
                conn = self._connect()
            self._busy[id(conn)] = (conn, deadline)
        return conn

    def _checkin(self, conn: Any) -> None:
        with self._lock:
            self._busy.pop(id(conn), None)
            keep = self._idle is None and not conn.limits.abandoned
            if keep:
                self._idle = conn
        if not keep:
            conn.disconnect()

    def abandon(self) -> None:
        """Drop the connections of runs past their deadline: their sockets are shut down (a
        blocked read returns at once) and never kept; the next run dials afresh."""
        with self._lock:
            stuck = [conn for conn, deadline in self._busy.values() if deadline.expired()]
        for conn in stuck:
            conn.limits.abandon()

    def _round_trip(self, conn: Any, ctx: ScrapeContext) -> tuple[Any, Any]:
        """Both replies; one fresh try if the kept connection died (server restart)."""
        kept = _connected(conn)
        try:
            return self._exchange(conn, ctx)
        except redis.ConnectionError:
            if not kept or ctx.deadline.expired() or conn.limits.abandoned:
                raise
        return self._exchange(conn, ctx)

    def _dial(self, conn: Any, deadline: Deadline) -> None:
        options = self.options
        conn.socket_connect_timeout = deadline.timeout(options.connect_timeout_seconds)
        conn.socket_timeout = deadline.timeout(options.read_timeout_seconds)
        if self._resp2:
            conn.protocol = 2
        try:
            conn.connect()
        except redis.ResponseError:
            if conn.protocol in (2, "2") or deadline.expired():
                raise
            # HELLO 3 refused (Redis < 6, some managed services, an ACL without +hello):
            # INFO reads the same over RESP2
            self._resp2 = True
            conn.protocol = 2
            conn.connect()
        self._histogram_supported = None  # the server may have been upgraded (or downgraded)
        self._sections = None

    def _exchange(self, conn: Any, ctx: ScrapeContext) -> tuple[Any, Any]:
        deadline, options = ctx.deadline, self.options
        limits = conn.limits
        limits.arm(deadline, options.read_timeout_seconds, options.max_reply_bytes)
        try:
            if not _connected(conn):
                self._dial(conn, deadline)
                limits.arm(deadline, options.read_timeout_seconds, options.max_reply_bytes)
            with_histogram = options.latency_histogram and self._histogram_supported is not False
            # a server that answered LATENCY HISTOGRAM on this connection is Redis >= 7, which
            # takes several INFO sections: INFO ALL but latencystats (see INFO_SECTIONS)
            sections = (
                with_histogram and self._histogram_supported is True and self._sections is not False
            )
            if sections:
                packed = self._packed_sections
            else:
                packed = self._packed_both if with_histogram else self._packed_info
            conn.send_packed_command(packed)
            try:
                raw = conn.read_response(disable_decoding=True)
            except redis.ResponseError:
                if not sections:
                    raise
                raw = None  # refused: INFO ALL below, once the histogram's reply is read
        except BaseException:
            conn.disconnect()
            raise
        reply = None
        if with_histogram:
            try:
                reply = conn.read_response(disable_decoding=True)
            except redis.ResponseError:  # ERR unknown subcommand: Redis < 7
                self._histogram_supported = False
            except BaseException:
                conn.disconnect()
                raise
            else:
                self._histogram_supported = True
        if sections and self._sections is None:  # the first such reply of this connection
            self._sections = raw is not None and _has_commandstats(raw)
        if sections and not self._sections:
            # refused, or answered without commandstats (a server that reads one section):
            # INFO ALL, now and on this connection from now on
            limits.arm(deadline, options.read_timeout_seconds, options.max_reply_bytes)
            try:
                conn.send_packed_command(self._packed_info)
                raw = conn.read_response(disable_decoding=True)
            except BaseException:
                conn.disconnect()
                raise
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
        if isinstance(exc, InvalidResponse):  # not RESP at all
            return "bad_response"
        reason = classify_error(exc)
        if reason == "error" and isinstance(exc, redis.ConnectionError):
            return "connection"
        if reason == "error" and isinstance(exc, redis.ResponseError):
            return "bad_response"
        return reason

    def close(self) -> None:
        """Disconnect the kept connection and shut down those of runs still in flight."""
        with self._lock:
            idle, self._idle = self._idle, None
            busy = [conn for conn, _ in self._busy.values()]
        if idle is not None:
            idle.disconnect()
        for conn in busy:
            conn.limits.abandon()


def _connected(conn: Any) -> bool:
    return conn._sock is not None


def _has_commandstats(raw: Any) -> bool:
    """Whether an INFO reply has the commandstats section (its header, there even when empty)."""
    if isinstance(raw, bytes):
        return b"# Commandstats\r\n" in raw
    return "# Commandstats\r\n" in text(raw)


def _connector(connection_class: type[Any], kwargs: Mapping[str, Any]) -> Callable[[], Any]:
    """Makes unconnected connections (no I/O) that fail fast: the scrape deadline, not
    redis-py's retries, bounds them. RESP2 unless RESP3 was asked for: INFO reads the same
    and every server speaks it."""
    settings = dict(kwargs)
    settings["retry"] = Retry(NoBackoff(), 0)
    if settings.get("protocol") is None:
        settings["protocol"] = 2
    bounded = bounded_class(connection_class)

    def connect() -> Any:
        return bounded(**settings)

    return connect


def build(options: Options | None, target: Target) -> RedisCollector:
    """A collector for one configured instance. Dials nothing: it connects at its first scrape."""
    effective = target.effective_options(options or Options())
    connection_class, kwargs = connection_settings(target, effective)
    secrets = [
        target.password.reveal() if target.password else "",
        url_password(target.url) or "",
    ]
    return RedisCollector(
        target.name,
        _connector(connection_class, kwargs),
        effective,
        server=server_identity(kwargs),
        secrets=secrets,
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
        _connector(pool.connection_class, kwargs),
        effective,
        server=server_identity(kwargs),
        secrets=[password] if isinstance(password, str) else [],
    )
