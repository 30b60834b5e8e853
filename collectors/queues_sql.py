"""Tasks kept in an application's SQL table, counted by a configured query (SQLAlchemy).

The query returns one row per group with columns named `queue`, `status`, `count` and
optionally `priority`, `type` and `age_seconds` (the age of the oldest row of the group).
Rows whose status is a waiting status are queued tasks, running statuses are in progress, any
other status (done, failed...) is processed, by `type` and status.

The database side is `collectors.sql`, as for the database collector: the exporter's own
engine (pool of one, connect timeout from the deadline, SQLite opened read-only) or the
application's engine in embedded mode, a statement limit applied by the database itself
(PostgreSQL `statement_timeout` local to the transaction, MariaDB `SET STATEMENT
max_statement_time=... FOR`, MySQL the `MAX_EXECUTION_TIME` hint, SQLite interrupted) that
never stays on a pooled connection, and a client-side cut at the deadline when the network
is gone. Its statements are the exporter's own: a statement observer on the application's
engine does not count them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from collectors.base import Deadline, ScrapeContext
from collectors.queues_model import ANY_TYPE, NO_PRIORITY, QueueReading
from collectors.queues_target import Clients, QueueTarget

REQUIRED_COLUMNS = ("queue", "status", "count")


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
        from collectors.sql import check_url

        try:
            check_url(self.url)
        except ValueError as exc:
            yield f"url: {exc}"
        if not self.query.strip():
            yield "query: must not be empty"

    def read(self, clients: Clients, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        from collectors.sql import BoundedEngine

        engine = clients.get("sql", self.engine, close)
        if not isinstance(engine, BoundedEngine):  # the application's own engine, injected
            engine = clients.get("sql_bounded", lambda: BoundedEngine(engine), close)
        statuses = StatusMap(frozenset(self.waiting_statuses), frozenset(self.running_statuses))
        read_sql(engine, self.query, statuses, ctx.deadline, self.cap, reading)

    def engine(self) -> Any:
        return create_engine(self.url, self.secret, self.cap)


def close(engine: Any) -> None:
    """Cut connections in use; dispose the engine if it is the exporter's own."""
    engine.close()


@dataclass(frozen=True)
class StatusMap:
    waiting: frozenset[str]
    running: frozenset[str]


def create_engine(url: str, password: str | None, cap: float) -> Any:
    """The exporter's own engine for the query: a pool of one, time limits of `cap` at most."""
    from sqlalchemy.engine import make_url

    from collectors.sql import EngineSettings
    from collectors.sql import create_engine as bounded_engine

    parsed = make_url(url)
    if password:
        parsed = parsed.set(password=password)
    settings = EngineSettings(
        pool_size=1, connect_timeout_seconds=cap, statement_timeout_seconds=cap
    )
    return bounded_engine(parsed, settings)


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
    engine: Any,
    query: str,
    statuses: StatusMap,
    deadline: Deadline,
    cap: float,
    reading: QueueReading,
) -> None:
    """Run the query on a `collectors.sql.BoundedEngine` within the deadline."""
    from sqlalchemy.exc import DBAPIError

    from collectors.sql import classify

    with engine.connect(deadline, cap) as q:
        try:
            result = q.execute(query)
        except DBAPIError as exc:
            if classify(exc) == "timeout":
                raise TimeoutError("the query ran past its time limit") from exc
            raise
        missing = [c for c in REQUIRED_COLUMNS if c not in result.keys()]
        if missing:
            raise ValueError(f"the query returns no column named {missing[0]}")
        add_rows(result.mappings(), statuses, reading)
