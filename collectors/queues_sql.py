"""Tasks kept in an application's SQL table, counted by a configured query (SQLAlchemy).

The query returns one row per group with columns named `queue`, `status`, `count` and
optionally `priority`, `type` and `age_seconds` (the age of the oldest row of the group).
Rows whose status is a waiting status are queued tasks, running statuses are in progress, any
other status (done, failed...) is processed, by `type` and status. The statement runs inside a
read-only transaction with a server-side time limit taken from the scrape deadline where the
dialect has one (PostgreSQL `statement_timeout`, MySQL/MariaDB `max_execution_time`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from collectors.base import Deadline
from collectors.queues_model import ANY_TYPE, NO_PRIORITY, QueueReading

REQUIRED_COLUMNS = ("queue", "status", "count")


def _postgres_limit(connection: Any, seconds: float) -> None:
    from sqlalchemy import text as sql

    connection.execute(sql(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}"))


def _mysql_limit(connection: Any, seconds: float) -> None:
    from sqlalchemy import text as sql

    connection.execute(sql(f"SET SESSION max_execution_time = {max(1, int(seconds * 1000))}"))


#: dialect name -> how to bound one statement's time on the server
STATEMENT_LIMITS: dict[str, Callable[[Any, float], None]] = {
    "postgresql": _postgres_limit,
    "mysql": _mysql_limit,
    "mariadb": _mysql_limit,
}
#: driver -> connect_args bounding the connection attempt (seconds)
CONNECT_TIMEOUT_ARGS: dict[str, Callable[[float], dict[str, Any]]] = {
    "psycopg": lambda s: {"connect_timeout": max(1, math.ceil(s))},
    "psycopg2": lambda s: {"connect_timeout": max(1, math.ceil(s))},
    "pymysql": lambda s: {"connect_timeout": s, "read_timeout": s, "write_timeout": s},
}


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

    with engine.connect() as connection:
        limit = STATEMENT_LIMITS.get(engine.dialect.name)
        with connection.begin():
            if limit is not None:
                limit(connection, deadline.timeout())
            result = connection.execute(sql(query))
            missing = [c for c in REQUIRED_COLUMNS if c not in result.keys()]
            if missing:
                raise ValueError(f"the query returns no column named {missing[0]}")
            add_rows(result.mappings(), statuses, reading)
