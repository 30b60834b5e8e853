"""Tasks kept in an application's SQL table, counted by a configured query (SQLAlchemy).

The query returns one row per group with columns named `queue`, `status`, `count` and
optionally `priority`, `type` and `age_seconds` (the age of the oldest row of the group).
Rows whose status is a waiting status are queued tasks, running statuses are in progress, any
other status (done, failed...) is processed, by `type` and status. The statement runs inside a
transaction with a time limit taken from the scrape deadline, applied by the database itself
(PostgreSQL `SET LOCAL statement_timeout`, MariaDB `SET STATEMENT max_statement_time=... FOR`,
MySQL `max_execution_time` set and restored, SQLite a progress handler that interrupts it), so
a slow query is cut and nothing of the limit stays on a pooled connection.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from collectors.base import Deadline, ScrapeContext
from collectors.queues_model import ANY_TYPE, NO_PRIORITY, QueueReading
from collectors.queues_target import Clients, QueueTarget

REQUIRED_COLUMNS = ("queue", "status", "count")

# ==== Statement and connect limits: the only dialect-specific code of this module ==============
# Kept together so it can be switched onto the collectors/sql/ dialect package in one place.

#: Error codes meaning "the time limit cut the statement": PostgreSQL SQLSTATE query_canceled,
#: MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT; SQLite says "interrupted".
_LIMIT_ERRORS: frozenset[object] = frozenset({"57014", 1969, 3024})


@contextlib.contextmanager
def statement_limit(connection: Any, seconds: float) -> Iterator[Callable[[str], str]]:
    """Within the block, a statement passed through the yielded function is cut by the database
    after `seconds`. On leaving, the connection is as it was (it goes back to a pool)."""
    from sqlalchemy import text as sql

    dialect = connection.dialect
    millis = max(1, int(seconds * 1000))
    if dialect.name == "postgresql":
        # LOCAL: ends with the transaction the caller holds
        connection.execute(sql(f"SET LOCAL statement_timeout = {millis}"))
        yield lambda query: query
    elif getattr(dialect, "is_mariadb", False):
        # MariaDB has no max_execution_time; SET STATEMENT ... FOR scopes it to one statement
        limit = f"{max(0.001, seconds):.3f}"
        yield lambda query: f"SET STATEMENT max_statement_time={limit} FOR {query}"
    elif dialect.name == "mysql":
        previous = connection.execute(sql("SELECT @@SESSION.max_execution_time")).scalar()
        connection.execute(sql(f"SET SESSION max_execution_time = {millis}"))
        try:
            yield lambda query: query
        finally:
            try:
                connection.execute(sql(f"SET SESSION max_execution_time = {int(previous or 0)}"))
            except Exception:
                connection.invalidate()  # never pool a connection that may keep the limit
                raise
    elif dialect.name == "sqlite":
        driver = connection.connection.driver_connection
        ends = time.monotonic() + seconds
        driver.set_progress_handler(lambda: int(time.monotonic() >= ends), 1000)
        try:
            yield lambda query: query
        finally:
            driver.set_progress_handler(None, 0)
    else:
        yield lambda query: query


def limit_reached(exc: BaseException) -> bool:
    """True if `exc` is the database cutting a statement at its time limit."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    codes = {getattr(orig, "sqlstate", None), orig.args[0] if orig.args else None}
    return bool(codes & _LIMIT_ERRORS) or str(orig) == "interrupted"


#: driver -> connect_args bounding the connection attempt (seconds)
CONNECT_TIMEOUT_ARGS: dict[str, Callable[[float], dict[str, Any]]] = {
    "psycopg": lambda s: {"connect_timeout": max(1, math.ceil(s))},
    "psycopg2": lambda s: {"connect_timeout": max(1, math.ceil(s))},
    "pymysql": lambda s: {"connect_timeout": s, "read_timeout": s, "write_timeout": s},
}
# ==== end of the dialect-specific code ===========================================================


@dataclass(frozen=True, kw_only=True)
class SqlTarget(QueueTarget):
    """`kind: sql`: an application's task table, counted by `query` (a SQLAlchemy URL)."""

    kind: Literal["sql"] = field(default="sql", init=False)
    #: Returns queue, status, count [, priority, type, age_seconds].
    query: str
    waiting_statuses: tuple[str, ...] = ("queued", "pending", "waiting")
    running_statuses: tuple[str, ...] = ("running", "started", "in_progress")

    def problems(self) -> Iterator[str]:
        yield from super().problems()
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(self.url)
        except ArgumentError:
            yield "url: not a valid SQLAlchemy URL (dialect+driver://user@host/db)"
        if not self.query.strip():
            yield "query: must not be empty"

    def read(self, clients: Clients, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        engine = clients.get("sql", self.engine, dispose)
        statuses = StatusMap(frozenset(self.waiting_statuses), frozenset(self.running_statuses))
        read_sql(engine, self.query, statuses, ctx.deadline, reading)

    def engine(self) -> Any:
        return create_engine(self.url, self.secret, self.cap)


def dispose(engine: Any) -> None:
    engine.dispose()


@dataclass(frozen=True)
class StatusMap:
    waiting: frozenset[str]
    running: frozenset[str]


def create_engine(url: str, password: str | None, connect_timeout: float) -> Any:
    """A small SQLAlchemy engine for the query (pool of one, checked before use)."""
    from sqlalchemy import create_engine as sa_create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if password:
        parsed = parsed.set(password=password)
    timeout_args = CONNECT_TIMEOUT_ARGS.get(parsed.get_driver_name())
    connect_args = timeout_args(connect_timeout) if timeout_args else {}
    return sa_create_engine(
        parsed, pool_size=1, max_overflow=0, pool_pre_ping=True, connect_args=connect_args
    )


def add_rows(rows: Iterable[Mapping[str, Any]], statuses: StatusMap, reading: QueueReading) -> None:
    """Sort each row's count into queued, in progress or processed."""
    for row in rows:
        queue = str(row["queue"])
        status = str(row["status"])
        count = float(row["count"] or 0)
        if status in statuses.waiting:
            priority = row.get("priority")
            reading.queued[(queue, NO_PRIORITY if priority is None else str(priority))] += count
            age = row.get("age_seconds")
            if age is not None:
                reading.oldest_age[queue] = max(float(age), reading.oldest_age.get(queue, 0.0))
        elif status in statuses.running:
            reading.in_progress[queue] += count
        else:
            task_type = row.get("type")
            reading.processed[(ANY_TYPE if task_type is None else str(task_type), status)] += count
            reading.has_processed = True
        reading.in_progress[queue] += 0.0


def read_sql(
    engine: Any, query: str, statuses: StatusMap, deadline: Deadline, reading: QueueReading
) -> None:
    from sqlalchemy import text as sql

    with engine.connect() as connection, connection.begin():
        try:
            with statement_limit(connection, deadline.timeout()) as limited:
                result = connection.execute(sql(limited(query)))
                missing = [c for c in REQUIRED_COLUMNS if c not in result.keys()]
                if missing:
                    raise ValueError(f"the query returns no column named {missing[0]}")
                add_rows(result.mappings(), statuses, reading)
        except Exception as exc:
            if limit_reached(exc):
                raise TimeoutError("the query ran past its time limit") from exc
            raise
