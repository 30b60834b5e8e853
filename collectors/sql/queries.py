"""The statements of one checked-out connection, each under the dialect's server-side limit
and the checkout's client-side guard: through SQLAlchemy (`execute`), or on the driver's own
cursor in as few round trips as the dialect allows (`batch`), parts a scrape can do without
(`optional`), read-only transactions (`read_only`). `BoundedEngine.connect` makes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError

from collectors.base import Deadline, ScrapeContext, classify_error
from collectors.sql.dialect import Dialect
from collectors.sql.own_counts import OwnExcluded
from collectors.sql.watchdog import WATCHDOG, Guard


class Queries:
    """Statements on one checked-out connection, each under a server-side time limit."""

    def __init__(
        self,
        conn: Connection,
        dialect: Dialect,
        deadline: Deadline,
        cap: float,
        autocommit: bool = False,
    ) -> None:
        self.conn = conn
        self.dialect = dialect
        self.deadline = deadline
        self.cap = cap
        #: each round trip its own transaction (the exporter's own engine, see BoundedEngine)
        self.autocommit = autocommit
        self.guard: Guard | None = None
        self.ping_seconds = 0.0
        #: where the server's counters lose the exporter's own share
        self.own: OwnExcluded | None = None

    @property
    def interrupted(self) -> bool:
        return self.guard is not None and self.guard.fired

    def rows(self, sql: str, **params: Any) -> list[Any]:
        return list(self.execute(sql, **params))

    def execute(self, sql: str, **params: Any) -> CursorResult[Any]:
        """One statement under the limits, through SQLAlchemy (a `CursorResult` with `keys()`
        and `mappings()`; psycopg and PyMySQL have read the whole result by the time it
        returns; SQLite reads on under the checkout's guard). On an autocommit connection
        it runs in a transaction of its own, so that the limit holds for it."""
        with self._transaction(), self._bounded() as seconds:
            statement = self.dialect.limited(self.conn, sql.strip(), seconds)
            return self.conn.execute(text(statement), params)

    def tuples(self, sql: str) -> list[tuple[Any, ...]]:
        """One statement's rows as plain tuples, on the driver's own cursor."""
        return self.batch((sql,))[0]

    def batch(self, statements: Sequence[str]) -> list[list[tuple[Any, ...]]]:
        """The rows of each of `statements` (no parameters), in order, as plain tuples, in as
        few round trips as the dialect allows (PostgreSQL: one), under the same limits as
        `execute`.

        What the exporter reads every scrape runs here: on the driver's cursor, with no
        SQLAlchemy compile, result or Row objects and no engine events (so no statement
        observer ever sees them). A driver error comes out as SQLAlchemy's `DBAPIError`, with
        the connection invalidated when the driver says it is gone, as `execute` does it.
        """
        with self._bounded() as seconds:
            dbapi = self.conn.connection.dbapi_connection
            errors = self.conn.dialect.loaded_dbapi.Error
            cursor = dbapi.cursor()  # type: ignore[union-attr]
            try:
                return self.dialect.run(self, cursor, [s.strip() for s in statements], seconds)
            except errors as exc:
                gone = self.conn.dialect.is_disconnect(exc, dbapi, cursor)
                if gone:
                    self.conn.invalidate(exc)
                raise DBAPIError.instance(
                    "; ".join(statements),
                    None,
                    exc,
                    errors,
                    connection_invalidated=gone,
                    dialect=self.conn.dialect,
                ) from exc
            finally:
                with contextlib.suppress(Exception):  # a cut connection may fail to close
                    cursor.close()

    @contextlib.contextmanager
    def round_trip(self) -> Iterator[None]:
        """One round trip of the dialect's `run`. On an autocommit connection the server
        counts it as a transaction of its own (committed, or rolled back by an error), so it
        is mirrored as a SQLAlchemy transaction (begun and ended without a statement: the
        driver has none open): the engine's commit and rollback events then see the
        exporter's own transactions as the server counts them."""
        if not self.autocommit or self.conn.in_transaction():
            yield
            return
        transaction = self.conn.begin()
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # a cut connection may fail to end it
                transaction.rollback()
            raise
        transaction.commit()

    @contextlib.contextmanager
    def _bounded(self) -> Iterator[float]:
        """The seconds one statement may take; the client-side cut for dialects whose server
        cannot limit it; a statement the guard interrupted reported as a timeout."""
        if self.deadline.expired():
            raise TimeoutError("scrape deadline reached")
        seconds = self.deadline.timeout(cap=self.cap, floor=0.05)
        alarm = None
        if not self.dialect.limits_on_server and self.guard is not None:
            alarm = WATCHDOG.arm(time.monotonic() + seconds, self.guard.fire)
        try:
            yield seconds
        except DBAPIError as exc:
            if self.interrupted:
                raise TimeoutError("time limit reached: statement interrupted") from exc
            raise
        finally:
            if alarm is not None:
                WATCHDOG.cancel(alarm)

    def one(self, sql: str, **params: Any) -> Any:
        return self.rows(sql, **params)[0]

    def ping(self) -> None:
        started = time.perf_counter()
        self.tuples(self.dialect.ping_statement(self.conn))
        self.ping_seconds = time.perf_counter() - started

    @contextlib.contextmanager
    def optional(self, what: str, ctx: ScrapeContext) -> Iterator[None]:
        """A part a scrape can do without: on a database error it is noted and skipped (under
        a savepoint, unless each round trip is its own transaction anyway)."""
        try:
            with contextlib.nullcontext() if self.autocommit else self.dialect.savepoint(self.conn):
                yield
        except DBAPIError as exc:
            if self.deadline.expired() or self.interrupted:
                raise
            ctx.note(f"{what} skipped this scrape ({classify_error(exc)})")

    @contextlib.contextmanager
    def read_only(self) -> Iterator[None]:
        """A read-only transaction, rolled back at the end (nothing is left set)."""
        with self._transaction():
            self.conn.rollback()
            self.conn.begin()
            try:
                self.dialect.start_read_only(self.conn)
                yield
            finally:
                self.conn.rollback()
                self.dialect.end_read_only(self.conn)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """On an autocommit connection, a real transaction for the block (the server's default
        isolation level, rolled back after it); elsewhere the checkout's own transaction."""
        if not self.autocommit:
            yield
            return
        self.conn.rollback()  # SQLAlchemy's own (server-side empty) autobegun transaction
        self.conn.execution_options(isolation_level=self.conn.default_isolation_level)
        self.autocommit = False
        try:
            self.conn.begin()
            yield
        finally:
            self.autocommit = True
            try:
                self.conn.rollback()
            finally:
                if not self.conn.invalidated:
                    self.conn.execution_options(isolation_level="AUTOCOMMIT")
