"""Engines whose every use is bounded by a deadline.

`BoundedEngine.connect(deadline)` waits for a pool slot at most until the deadline, opens a
connection within it (the connect timeout follows the deadline), pings it (a stale pooled
connection is replaced once, which is what `pool_pre_ping` would do, but bounded), and yields
`Queries` (collectors/sql/queries.py): every statement under the dialect's server-side limit
and a client-side `Guard` that interrupts the connection's I/O at the deadline. `abandon()`
and `close()` interrupt connections still in use without waiting for the threads that use
them.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool

from collectors.base import Deadline
from collectors.sql.dialect import ConnectSettings, for_connection, for_url, with_driver
from collectors.sql.errors import classify
from collectors.sql.own_counts import LEDGER, OWN_CHECKOUT, SESSION_RECORDED, OwnExcluded
from collectors.sql.pool import read_pool
from collectors.sql.queries import Queries
from collectors.sql.watchdog import Guard

APPLICATION_NAME = "afirgen-exporter"
#: Execution option set on every connection the exporter checks out, so that a statement
#: observer on an application's engine (`collectors.sql.observer`) never counts the
#: exporter's own statements.
OWN_STATEMENTS = "afirgen_exporter_own"
#: The client side cuts a connection this long after the deadline, so that the server-side
#: limit (never later than the deadline) can answer first and the connection survives.
CLIENT_GRACE_SECONDS = 0.25
#: pool_recycle of the exporter's own engines
RECYCLE_SECONDS = 1800


@dataclass(frozen=True)
class EngineSettings:
    """The exporter's own engine for one URL."""

    pool_size: int = 1
    connect_timeout_seconds: float = 5.0
    statement_timeout_seconds: float = 5.0
    application_name: str = APPLICATION_NAME
    #: Reads only, each round trip its own transaction (dialects with `autocommit_reads`):
    #: no BEGIN and ROLLBACK round trips, and PostgreSQL's driver keeps the statements it
    #: prepared (a rollback drops them). The database collector's engine; the SQL task queue
    #: keeps transactions.
    autocommit: bool = False


class ConnectDeadline(threading.local):
    """The connect timeout for connections opened in this thread's current checkout."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.deadline: Deadline | None = None

    def seconds(self) -> float:
        return self.cap if self.deadline is None else self.deadline.timeout(cap=self.cap)


def create_engine(url: URL | str, settings: EngineSettings) -> BoundedEngine:
    """The exporter's own engine: pool of `pool_size`, no overflow, connect and statement
    time limits from the deadline, sessions named `application_name`. Does not connect."""
    url = with_driver(make_url(url))
    dialect = for_url(url)
    connect = ConnectDeadline(settings.connect_timeout_seconds)
    autocommit = settings.autocommit and dialect.autocommit_reads
    extra: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    engine = sa_create_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=0,
        pool_timeout=settings.connect_timeout_seconds,
        pool_recycle=RECYCLE_SECONDS,
        **dialect.engine_arguments(
            url,
            ConnectSettings(
                settings.application_name, settings.statement_timeout_seconds, connect.seconds
            ),
        ),
        **extra,
    )

    @event.listens_for(engine, "do_connect")
    def _bounded_connect(_: Any, __: Any, ___: Any, cparams: dict[str, Any]) -> None:
        dialect.bound_connect(cparams, connect.seconds())

    return BoundedEngine(engine, owned=True, connect=connect, autocommit=autocommit)


class BoundedEngine:
    """An engine (the exporter's own, or an application's) used under deadlines.

    `autocommit` (only the exporter's own engines, made so by `create_engine`): each round
    trip is its own transaction, so a checkout begins none and a part that fails alone needs
    no savepoint; `execute` and `read_only` open a real transaction for their statement.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        owned: bool = False,
        connect: ConnectDeadline | None = None,
        autocommit: bool = False,
    ) -> None:
        self.engine = engine
        self.owned = owned
        self.autocommit = autocommit
        self.dialect = for_url(engine.url)
        self._connect = connect
        #: how long after the deadline the client side cuts a connection
        self.client_grace_seconds = CLIENT_GRACE_SECONDS
        self._guards: set[Guard] = set()
        self._lock = threading.Lock()  # guards the set only; never held during I/O
        self._slot = threading.Condition()
        if owned:
            event.listen(engine, "checkin", self._slot_freed)
            # on every connection of the engine at once, not at each checkout
            engine.update_execution_options(**{OWN_STATEMENTS: True})
        #: the server's counters with what the exporter made it count (on every engine of the
        #: same database, the SQL task queue's included) taken out
        self.own = OwnExcluded(LEDGER.attach(engine, self.dialect, owned=owned))
        self._had_session = False  # whether the engine's first connection was recorded

    def _slot_freed(self, *_: Any) -> None:
        with self._slot:
            self._slot.notify_all()

    def _wait_for_slot(self, deadline: Deadline) -> None:
        """Never queue past the deadline behind a connection a stuck run still holds."""
        pool = self.engine.pool
        if not (self.owned and isinstance(pool, QueuePool)):
            return
        if not read_pool(pool).exhausted:  # the usual case, without the condition's lock
            return
        with self._slot:
            if not self._slot.wait_for(lambda: not read_pool(pool).exhausted, deadline.remaining()):
                raise TimeoutError("no pool slot free before the deadline")

    @contextlib.contextmanager
    def connect(self, deadline: Deadline, cap: float) -> Iterator[Queries]:
        """A pinged connection whose statements are bounded by `deadline` (and `cap` each)."""
        self._wait_for_slot(deadline)
        if self._connect is not None:
            self._connect.deadline = deadline
        try:
            for attempt in range(2):
                marked: dict[Any, Any] | None = None
                try:
                    with self._checkout() as conn:
                        if not self.autocommit:
                            conn.begin()  # rolled back at close, whatever reader ran on it
                        dialect = for_connection(conn) or self.dialect
                        queries = Queries(conn, dialect, deadline, cap, self.autocommit)
                        queries.own = self.own
                        marked = conn.info
                        marked[OWN_CHECKOUT] = True  # the pool's rollback at its return is ours
                        with self._guarded(queries):
                            try:
                                if self.owned and not conn.info.get(SESSION_RECORDED):
                                    self._record_session(queries)
                                queries.ping()
                            except DBAPIError as exc:
                                # a stale pooled connection (server restarted): one fresh try,
                                # unless the time is what ran out
                                if attempt or not exc.connection_invalidated or _timed_out(exc):
                                    raise
                                continue
                            yield queries
                            return
                finally:
                    if marked is not None:  # the pool's reset has seen it, or never will
                        marked.pop(OWN_CHECKOUT, None)
        finally:
            if self._connect is not None:
                self._connect.deadline = None

    def _record_session(self, queries: Queries) -> None:
        """A new connection of the exporter's own engine: what its set-up made the server
        count is the exporter's (read before anything else runs on it)."""
        counts = queries.dialect.session_start(queries, first=not self._had_session)
        LEDGER.record_all(self.own.identity, counts)
        queries.conn.info[SESSION_RECORDED] = True
        self._had_session = True

    def _checkout(self) -> Connection:
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            release_frames(exc)
            raise
        if not self.owned:  # an application's engine: only the exporter's checkouts
            conn.execution_options(**{OWN_STATEMENTS: True})
        return conn

    @contextlib.contextmanager
    def _guarded(self, queries: Queries) -> Iterator[None]:
        dbapi = queries.conn.connection.dbapi_connection
        # Socket timeouts once per checkout, what is left rounded up to the grace step (so
        # at most the grace past the deadline): a timeout that changes costs a settimeout()
        # that hands the GIL around, and scrapes with the same timeout get the same value.
        step = self.client_grace_seconds
        restore = queries.dialect.bound_io(
            dbapi, max(step, math.ceil(queries.deadline.remaining() / step) * step)
        )
        interrupt, release = queries.dialect.interrupter(dbapi)
        guard = Guard(queries.deadline.at, self.client_grace_seconds, interrupt, release)
        queries.guard = guard
        with self._lock:
            self._guards.add(guard)
        try:
            yield
        finally:
            with self._lock:
                self._guards.discard(guard)
            guard.close()
            if not self.owned:  # an application's connection gets its own timeouts back
                restore()

    def interrupt(self, *, overdue_only: bool) -> int:
        """Break the I/O of connections in use (only those past their deadline, or all)."""
        now = time.monotonic()
        with self._lock:
            guards = [g for g in self._guards if not overdue_only or g.deadline_at <= now]
        for guard in guards:
            guard.fire()
        return len(guards)

    def abandon(self) -> None:
        """A run overran its deadline: cut its connection now; the pool slot comes back as
        SQLAlchemy invalidates it, and the next run checks out a fresh one."""
        self.interrupt(overdue_only=True)

    def close(self) -> None:
        """Cut connections in use (without waiting for their threads), close the rest."""
        self.interrupt(overdue_only=False)
        LEDGER.detach(self.engine)
        if self.owned:
            self.engine.dispose()


def release_frames(exc: BaseException) -> None:
    """Drop the local variables of the finished frames an error's traceback holds.

    psycopg's failed connect keeps its half-open connection (and socket) in a frame that the
    raised error's traceback references in a cycle: without this the socket stays open until
    the garbage collector runs, and a dead network piles them up.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        orig = getattr(current, "orig", None)
        current = (
            orig
            if isinstance(orig, BaseException) and id(orig) not in seen
            else (current.__cause__ or current.__context__)
        )


def _timed_out(exc: DBAPIError) -> bool:
    return classify(exc) == "timeout"
