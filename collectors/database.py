"""Databases through SQLAlchemy: the connection pool and the server's own statistics.

Standalone, each configured database gets one small long-lived engine (pre-ping, a connect
timeout, `application_name` / `program_name` = `afirgen-exporter`). Embedded, `from_engine`
reads the application's engine, so the pool numbers describe the pool the application uses.
The pool is read before the collector borrows a connection, so they never count the exporter.

Every statement runs under a server-side time limit derived from the scrape deadline
(PostgreSQL `statement_timeout` and `lock_timeout` local to the transaction, MariaDB
`SET STATEMENT max_statement_time`, MySQL `MAX_EXECUTION_TIME`), so a blocked query is
cancelled by the server instead of leaving a stuck backend behind. Nothing is left set on a
borrowed connection: the transaction is rolled back when it goes back to the pool.

Statement counts come only from what the server tracks (pg_stat_statements, performance_schema
digests); without it those families are absent and a landing-page note says why.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import Pool, QueuePool

from collectors.base import Deadline, ScrapeContext, SourceCollector, classify_error, up_family
from collectors.checks import check_limit, check_positive
from collectors.secret import Secret

APPLICATION_NAME = "afirgen-exporter"

#: dialect -> (the driver used when the URL names none, the drivers accepted)
DIALECTS: Mapping[str, tuple[str, frozenset[str]]] = {
    "postgresql": ("psycopg", frozenset({"psycopg"})),
    "mysql": ("pymysql", frozenset({"pymysql"})),
    "mariadb": ("pymysql", frozenset({"pymysql"})),
    "sqlite": ("pysqlite", frozenset({"pysqlite"})),
}

STATEMENT_TYPES = ("select", "insert", "update", "delete")
OTHER = "other"

_URL_HINT = (
    "expected dialect+driver://user@host:port/database, e.g. postgresql+psycopg://app@db/app"
)


def check_database_url(value: str) -> str:
    """A URL SQLAlchemy can use with a supported dialect. Messages never echo the URL."""
    try:
        url = make_url(value)
        backend, driver = url.get_backend_name(), url.get_driver_name()
        _ = url.port  # a non-numeric port raises here
    except Exception:  # noqa: BLE001 - any parse failure is the same config error
        raise ValueError(f"not a valid database URL ({_URL_HINT})") from None
    if backend not in DIALECTS:
        supported = ", ".join(DIALECTS)
        raise ValueError(f"unsupported dialect (supported: {supported})")
    default, accepted = DIALECTS[backend]
    if "+" in url.drivername and driver not in accepted:
        raise ValueError(f"unsupported driver for {backend} (use {backend}+{default})")
    if backend != "sqlite" and not url.database:
        raise ValueError("the URL names no database (add /DATABASE at the end)")
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database cannot be watched: give a file path")
    return value


def check_pool_size(value: int) -> int:
    if not 1 <= value <= 4:
        raise ValueError(f"must be 1-4, got {value}")
    return value


@dataclass(frozen=True)
class Options:
    """`collectors.database:` — defaults for every database (and for embedded engines)."""

    #: At most this many tables (per family) and statement tables; the rest fold into `other`.
    table_limit: int = field(default=50, metadata={"check": check_limit})
    #: Read pg_stat_statements / performance_schema digests where the server has them.
    track_statements: bool = True
    #: Upper bound for one statement; the scrape deadline lowers it further.
    statement_timeout_seconds: float = field(default=5.0, metadata={"check": check_positive})


@dataclass(frozen=True)
class Target:
    """One entry of `databases:`."""

    name: str
    url: str = field(metadata={"check": check_database_url})
    #: Replaces any password in the URL; `${ENV}` works here.
    password: Secret | None = None
    password_file: str | None = field(default=None, metadata={"secret_file_for": "password"})
    #: This database's own limit inside the scrape deadline.
    timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    connect_timeout_seconds: float = field(default=5.0, metadata={"check": check_positive})
    statement_timeout_seconds: float | None = field(
        default=None, metadata={"check": check_positive}
    )
    table_limit: int | None = field(default=None, metadata={"check": check_limit})
    track_statements: bool | None = None
    #: Connections the exporter keeps open to this database (scrapes never overlap).
    pool_size: int = field(default=1, metadata={"check": check_pool_size})
    #: How the exporter's connections are named on the server (pg_stat_activity etc.).
    application_name: str = APPLICATION_NAME


def effective_options(options: Options | None, target: Target) -> Options:
    """Collector-wide options with this target's overrides applied."""
    base = options or Options()
    overrides: dict[str, Any] = {}
    if target.table_limit is not None:
        overrides["table_limit"] = target.table_limit
    if target.track_statements is not None:
        overrides["track_statements"] = target.track_statements
    if target.statement_timeout_seconds is not None:
        overrides["statement_timeout_seconds"] = target.statement_timeout_seconds
    return replace(base, **overrides)


def build(options: Options | None, target: Target) -> DatabaseCollector:
    """A collector with its own small engine. Creating an engine does not connect."""
    url = standalone_url(target)
    secrets = [s for s in (url.password, target.password and target.password.reveal()) if s]
    connect_deadline = _ConnectDeadline(target.connect_timeout_seconds)
    effective = effective_options(options, target)
    engine = create_standalone_engine(
        url, target, connect_deadline, effective.statement_timeout_seconds
    )
    return DatabaseCollector(
        target.name,
        engine,
        effective,
        owns_engine=True,
        connect_deadline=connect_deadline,
        secrets=[str(s) for s in secrets],
    )


def from_engine(
    engine: Engine, name: str = "app", options: Options | None = None
) -> SourceCollector:
    """Embedded mode: a collector on the application's own engine (its pool, its server)."""
    password = engine.url.password
    return DatabaseCollector(
        name,
        engine,
        options or Options(),
        owns_engine=False,
        secrets=[str(password)] if password else [],
    )


def standalone_url(target: Target) -> URL:
    url = make_url(target.url)
    backend = url.get_backend_name()
    if "+" not in url.drivername:
        url = url.set(drivername=f"{backend}+{DIALECTS[backend][0]}")
    if target.password:
        url = url.set(password=target.password.reveal())
    return url


class _ConnectDeadline(threading.local):
    """The connect timeout for connections opened in this thread's current scrape."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.deadline: Deadline | None = None

    def seconds(self) -> float:
        if self.deadline is None:
            return self.cap
        return self.deadline.timeout(cap=self.cap)


def create_standalone_engine(
    url: URL, target: Target, connect: _ConnectDeadline, statement_timeout: float
) -> Engine:
    """The exporter's own engine for one database; the connect timeout follows the deadline."""
    backend = url.get_backend_name()
    common: dict[str, Any] = {
        "pool_size": target.pool_size,
        "max_overflow": 0,
        "pool_pre_ping": True,
        "pool_timeout": target.connect_timeout_seconds,
        "pool_recycle": 1800,
    }
    if backend == "sqlite":
        path = url.database or ""

        def open_read_only() -> sqlite3.Connection:
            uri = f"file:{path}?mode=ro"
            return sqlite3.connect(
                uri, uri=True, timeout=connect.seconds(), check_same_thread=False
            )

        engine = create_engine(url, creator=open_read_only, poolclass=QueuePool, **common)
        return engine
    if backend == "postgresql":
        connect_args: dict[str, Any] = {"application_name": target.application_name}
    else:
        connect_args = {
            "program_name": target.application_name,
            # a client-side backstop behind the server-side statement limit
            "read_timeout": statement_timeout + 5.0,
            "write_timeout": statement_timeout + 5.0,
        }
    engine = create_engine(url, connect_args=connect_args, **common)

    @event.listens_for(engine, "do_connect")
    def _bounded_connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seconds = connect.seconds()
        if backend == "postgresql":
            cparams["connect_timeout"] = max(2, math.ceil(seconds))  # libpq: whole s, min 2
        else:
            cparams["connect_timeout"] = seconds

    return engine


# -- the pool -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolState:
    """What SQLAlchemy's pool says; None where the pool class has no such number."""

    capacity: int | None = None
    available: int | None = None
    checked_out: int | None = None
    overflow: int | None = None

    @property
    def exhausted(self) -> bool:
        return (
            self.capacity is not None
            and self.checked_out is not None
            and self.checked_out >= self.capacity
        )


def read_pool(pool: Pool) -> PoolState:
    """Pool numbers from the pool object itself: no I/O, no connection borrowed."""
    if isinstance(pool, QueuePool):
        max_overflow = int(getattr(pool, "_max_overflow", 0))
        size = pool.size()
        return PoolState(
            capacity=size + max_overflow if max_overflow >= 0 else None,
            available=pool.checkedin(),
            checked_out=pool.checkedout(),
            overflow=max(0, pool.overflow()),
        )
    checked_out = getattr(pool, "checkedout", None)
    checked_in = getattr(pool, "checkedin", None)
    return PoolState(
        available=int(checked_in()) if callable(checked_in) else None,
        checked_out=int(checked_out()) if callable(checked_out) else None,
    )


#: PoolState field -> (metric, help)
POOL_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("capacity", "db_connection_pool_size", "Connections the pool may hold: size + max overflow."),
    ("available", "db_connection_pool_available", "Idle connections ready in the pool."),
    ("checked_out", "db_connection_pool_checked_out", "Connections lent out by the pool."),
    ("overflow", "db_connection_pool_overflow", "Connections open beyond the pool size."),
)


def pool_families(database: str, state: PoolState) -> list[Metric]:
    families: list[Metric] = []
    for attr, name, help_text in POOL_FAMILIES:
        value = getattr(state, attr)
        if value is None:
            continue
        family = GaugeMetricFamily(name, f"{help_text} (SQLAlchemy pool)", labels=["database"])
        family.add_metric([database], float(value))
        families.append(family)
    return families


# -- statement text -> (type, table) ----------------------------------------------------------

_FIRST_WORD = re.compile(r"^\s*(?:/\*.*?\*/\s*)*([A-Za-z]+)", re.S)
_MAIN_TABLE = re.compile(
    r"\b(?:from|into|update)\s+((?:[`\"]?[\w$]+[`\"]?\s*\.\s*)?[`\"]?[\w$]+[`\"]?)",
    re.IGNORECASE,
)
#: the same search, for PostgreSQL's regexp_match (ARE syntax)
PG_MAIN_TABLE = r"\m(?:from|into|update)\s+((?:\"?[\w$]+\"?\s*\.\s*)?\"?[\w$]+\"?)"
PG_FIRST_WORD = r"^\s*([A-Za-z]+)"


def statement_type(first_word: str | None) -> str:
    word = (first_word or "").lower()
    if word == "replace":
        return "insert"
    return word if word in STATEMENT_TYPES else OTHER


def table_name(token: str | None) -> str:
    """The table part of `schema.table` with quotes removed; `other` when there is none."""
    if not token:
        return OTHER
    name = token.replace("`", "").replace('"', "").split(".")[-1].strip()
    return name.lower() if name and name.upper() != "SELECT" else OTHER


def classify_statement(sql: str) -> tuple[str, str]:
    """(type, main table) of a normalised statement text, as the `type`/`table` labels."""
    first = _FIRST_WORD.match(sql)
    kind = statement_type(first.group(1) if first else None)
    table = _MAIN_TABLE.search(sql)
    if kind == OTHER:
        return kind, table_name(table.group(1)) if table else OTHER
    return kind, table_name(table.group(1) if table else None)


# -- families --------------------------------------------------------------------------------


class Families:
    """Families of one scrape, created on first use, every one carrying `database` first."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._families: dict[str, Metric] = {}

    def add(
        self,
        kind: str,
        name: str,
        help_text: str,
        value: float,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        labels = labels or {}
        family = self._families.get(name)
        if family is None:
            names = ["database", *labels]
            family = (
                CounterMetricFamily(name, help_text, labels=names)
                if kind == "counter"
                else GaugeMetricFamily(name, help_text, labels=names)
            )
            self._families[name] = family
        assert isinstance(family, CounterMetricFamily | GaugeMetricFamily)
        family.add_metric([self.database, *labels.values()], float(value))

    def gauge(self, name: str, help_text: str, value: float, **labels: str) -> None:
        self.add("gauge", name, help_text, value, labels)

    def counter(self, name: str, help_text: str, value: float, **labels: str) -> None:
        self.add("counter", name, help_text, value, labels)

    def summary(self, name: str, help_text: str, count: float, total: float, **labels: str) -> None:
        family = self._families.get(name)
        if family is None:
            family = SummaryMetricFamily(name, help_text, labels=["database", *labels])
            self._families[name] = family
        assert isinstance(family, SummaryMetricFamily)
        family.add_metric([self.database, *labels.values()], int(count), total)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


@dataclass(frozen=True)
class TableStat:
    """One per-table value: family, help, counter or gauge, the row's column."""

    name: str
    kind: str
    help: str
    column: str
    fold: Callable[[Sequence[float]], float] = sum


#: pg_stat_user_tables columns (and sizes) -> families
PG_TABLE_STATS: tuple[TableStat, ...] = (
    TableStat(
        "db_table_rows_read_total",
        "counter",
        "Rows read (seq_tup_read + idx_tup_fetch).",
        "rows_read",
    ),
    TableStat("db_table_rows_inserted_total", "counter", "Rows inserted (n_tup_ins).", "inserted"),
    TableStat("db_table_rows_updated_total", "counter", "Rows updated (n_tup_upd).", "updated"),
    TableStat("db_table_rows_deleted_total", "counter", "Rows deleted (n_tup_del).", "deleted"),
    TableStat("db_table_live_rows", "gauge", "Estimated live rows (n_live_tup).", "live"),
    TableStat("db_table_dead_rows", "gauge", "Estimated dead rows (n_dead_tup).", "dead"),
    TableStat("db_table_seq_scans_total", "counter", "Sequential scans (seq_scan).", "seq_scan"),
    TableStat("db_table_index_scans_total", "counter", "Index scans (idx_scan).", "idx_scan"),
    TableStat(
        "db_table_last_vacuum_age_seconds",
        "gauge",
        "Time since the last (auto)vacuum; absent if never.",
        "vacuum_age",
        max,
    ),
    TableStat(
        "db_table_last_analyze_age_seconds",
        "gauge",
        "Time since the last (auto)analyze; absent if never.",
        "analyze_age",
        max,
    ),
)

#: information_schema.TABLES / performance_schema table I/O columns -> families
MYSQL_TABLE_STATS: tuple[TableStat, ...] = (
    TableStat(
        "db_table_rows_read_total",
        "counter",
        "Rows fetched (performance_schema COUNT_FETCH).",
        "rows_read",
    ),
    TableStat(
        "db_table_rows_inserted_total",
        "counter",
        "Rows inserted (performance_schema COUNT_INSERT).",
        "inserted",
    ),
    TableStat(
        "db_table_rows_updated_total",
        "counter",
        "Rows updated (performance_schema COUNT_UPDATE).",
        "updated",
    ),
    TableStat(
        "db_table_rows_deleted_total",
        "counter",
        "Rows deleted (performance_schema COUNT_DELETE).",
        "deleted",
    ),
    TableStat(
        "db_table_live_rows", "gauge", "Estimated rows (information_schema TABLE_ROWS).", "live"
    ),
)

SIZE_STAT = TableStat(
    "db_table_size_bytes", "gauge", "Table size on disk including indexes.", "size"
)

#: SHOW GLOBAL STATUS variable -> (family, counter or gauge, help, multiplier to base unit)
MYSQL_STATUS: Mapping[str, tuple[str, str, str, float]] = {
    "Aborted_connects": (
        "db_aborted_connections_total",
        "counter",
        "Failed connection attempts (Aborted_connects).",
        1.0,
    ),
    "Aborted_clients": (
        "db_aborted_clients_total",
        "counter",
        "Connections dropped without a proper close (Aborted_clients).",
        1.0,
    ),
    "Innodb_row_lock_waits": (
        "db_row_lock_waits_total",
        "counter",
        "Times InnoDB waited for a row lock.",
        1.0,
    ),
    "Innodb_row_lock_time": (
        "db_row_lock_wait_seconds_total",
        "counter",
        "Time spent waiting for InnoDB row locks.",
        1e-3,
    ),
    "Innodb_deadlocks": (
        "db_deadlocks_total",
        "counter",  # MariaDB only
        "Deadlocks detected (Innodb_deadlocks).",
        1.0,
    ),
    "Slow_queries": (
        "db_slow_queries_total",
        "counter",
        "Statements slower than long_query_time.",
        1.0,
    ),
    "Created_tmp_disk_tables": (
        "db_temp_disk_tables_total",
        "counter",
        "Internal temporary tables written to disk.",
        1.0,
    ),
    "Uptime": ("db_uptime_seconds", "gauge", "Seconds since the server started.", 1.0),
}

#: Com_* statement counters exported as db_commands_total{command}
MYSQL_COMMANDS = (
    "select",
    "insert",
    "insert_select",
    "update",
    "update_multi",
    "delete",
    "delete_multi",
    "replace",
    "replace_select",
    "load",
    "begin",
    "commit",
    "rollback",
    "call_procedure",
    "stmt_execute",
    "create_table",
    "alter_table",
    "drop_table",
    "truncate",
    "set_option",
)


# -- one scrape's statements ------------------------------------------------------------------


class Queries:
    """Runs statements on one borrowed connection, each under a server-side time limit."""

    def __init__(self, conn: Connection, flavour: str, deadline: Deadline, cap: float) -> None:
        self.conn = conn
        self.flavour = flavour  # postgresql | mariadb | mysql | sqlite
        self.deadline = deadline
        self.cap = cap

    def rows(self, sql: str, **params: Any) -> list[Any]:
        if self.deadline.expired():
            raise TimeoutError("scrape deadline reached")
        sql = sql.strip()
        seconds = self.deadline.timeout(cap=self.cap, floor=0.05)
        if self.flavour == "postgresql":
            limit = f"{max(1, int(seconds * 1000))}ms"
            self.conn.execute(
                text(
                    "SELECT set_config('statement_timeout', :t, true),"
                    " set_config('lock_timeout', :t, true)"
                ),
                {"t": limit},
            )
        elif self.flavour == "mariadb":
            sql = f"SET STATEMENT max_statement_time={seconds:.3f} FOR {sql}"
        elif self.flavour == "mysql" and sql.startswith("SELECT"):
            sql = f"SELECT /*+ MAX_EXECUTION_TIME({max(1, int(seconds * 1000))}) */" + sql[6:]
        return list(self.conn.execute(text(sql), params))

    def one(self, sql: str, **params: Any) -> Any:
        return self.rows(sql, **params)[0]

    @contextlib.contextmanager
    def optional(self, what: str, ctx: ScrapeContext) -> Iterator[None]:
        """A part a scrape can do without: on a database error it is noted and skipped."""
        savepoint = self.conn.begin_nested() if self.flavour != "sqlite" else None
        try:
            yield
        except DBAPIError as exc:
            if savepoint is not None:
                savepoint.rollback()
            if self.deadline.expired():
                raise
            ctx.note(f"{what} skipped this scrape ({classify_error(exc)})")
        else:
            if savepoint is not None:
                savepoint.commit()


#: what ranks tables for the budget: rows touched plus live rows
ACTIVITY_COLUMNS = ("rows_read", "inserted", "updated", "deleted", "live")


def fold_tables(
    ctx: ScrapeContext,
    rows: Mapping[str, Mapping[str, float | None]],
    stats: Sequence[TableStat],
    out: Families,
    limit: int,
    weigh_by: Sequence[str] = ACTIVITY_COLUMNS,
) -> None:
    """Per-table values for the `limit` tables with the most activity (or whatever `weigh_by`
    names); the others are summed under `other` (ages: the oldest)."""
    weights = {
        table: sum(values.get(column) or 0.0 for column in weigh_by)
        for table, values in rows.items()
    }
    # a table really named `other` joins the `other` series rather than duplicating it
    kept = ctx.keep_top({t: w for t, w in weights.items() if t != OTHER}, limit)
    for stat in stats:
        folded: list[float] = []
        for table in sorted(rows):
            value = rows[table].get(stat.column)
            if value is None:
                continue
            if table in kept:
                out.add(stat.kind, stat.name, stat.help, value, {"table": table})
            else:
                folded.append(value)
        if folded:
            out.add(stat.kind, stat.name, stat.help, stat.fold(folded), {"table": OTHER})


def statement_families(
    ctx: ScrapeContext,
    rows: Sequence[tuple[str, str, float, float]],
    out: Families,
    limit: int,
    source: str,
) -> None:
    """db_queries_total and db_query_duration_seconds from (type, table, calls, seconds)."""
    by_table: dict[str, float] = {}
    for _, table, calls, _ in rows:
        by_table[table] = by_table.get(table, 0.0) + calls
    kept = ctx.keep_top({t: c for t, c in by_table.items() if t != OTHER}, limit)
    totals: dict[tuple[str, str], tuple[float, float]] = {}
    for kind, table, calls, seconds in rows:
        key = (kind, table if table in kept else OTHER)
        count, total = totals.get(key, (0.0, 0.0))
        totals[key] = (count + calls, total + seconds)
    for (kind, table), (count, total) in sorted(totals.items()):
        out.counter("db_queries", f"Statements executed ({source}).", count, type=kind, table=table)
        out.summary(
            "db_query_duration_seconds",
            f"Time spent executing statements ({source}).",
            count,
            total,
            type=kind,
            table=table,
        )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- PostgreSQL -------------------------------------------------------------------------------

PG_ACTIVITY = """
SELECT coalesce(state, 'unknown') AS state, count(*) AS n
FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1
"""
PG_AGES = """
SELECT
  coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0) AS xact_age,
  coalesce(extract(epoch FROM max(clock_timestamp() - query_start)
           FILTER (WHERE state = 'active')), 0) AS query_age,
  count(*) FILTER (WHERE wait_event_type = 'Lock') AS lock_waits
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
"""
PG_DATABASE = """
SELECT xact_commit, xact_rollback, deadlocks, temp_bytes, temp_files, blks_hit, blks_read,
  pg_database_size(current_database()) AS size,
  current_setting('max_connections')::int AS max_connections,
  current_setting('server_version') AS version,
  current_setting('shared_preload_libraries') AS preload
FROM pg_stat_database WHERE datname = current_database()
"""
PG_TABLES = """
SELECT CASE WHEN schemaname = 'public' THEN relname ELSE schemaname || '.' || relname END AS tbl,
  coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS rows_read,
  n_tup_ins AS inserted, n_tup_upd AS updated, n_tup_del AS deleted,
  n_live_tup AS live, n_dead_tup AS dead, seq_scan, idx_scan,
  extract(epoch FROM clock_timestamp() - greatest(last_vacuum, last_autovacuum)) AS vacuum_age,
  extract(epoch FROM clock_timestamp() - greatest(last_analyze, last_autoanalyze)) AS analyze_age
FROM pg_stat_user_tables
"""
# Tables someone holds an ACCESS EXCLUSIVE lock on are skipped: sizing them would wait.
PG_TABLE_SIZES = """
SELECT CASE WHEN schemaname = 'public' THEN relname ELSE schemaname || '.' || relname END AS tbl,
  CASE WHEN NOT EXISTS (
    SELECT 1 FROM pg_locks l WHERE l.relation = s.relid AND l.mode = 'AccessExclusiveLock')
  THEN pg_total_relation_size(s.relid) END AS size
FROM pg_stat_user_tables s
"""
PG_STATEMENTS = """
SELECT (regexp_match(query, :first))[1] AS word, (regexp_match(query, :main, 'i'))[1] AS tbl,
  sum(calls) AS calls, sum(total_exec_time) / 1000.0 AS seconds
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
GROUP BY 1, 2
"""
PG_CONNECTION_STATES = {
    "active": "active",
    "idle": "idle",
    "idle in transaction": "idle_in_transaction",
    "idle in transaction (aborted)": "idle_in_transaction_aborted",
    "fastpath function call": "fastpath_function_call",
    "disabled": "disabled",
}

#: states shown even at 0, so dashboards and alerts never see them vanish
PG_ALWAYS_REPORTED_STATES = ("active", "idle", "idle_in_transaction")


def postgres_families(q: Queries, ctx: ScrapeContext, out: Families, options: Options) -> None:
    states = dict.fromkeys(PG_ALWAYS_REPORTED_STATES, 0.0)
    for row in q.rows(PG_ACTIVITY):
        state = PG_CONNECTION_STATES.get(row.state, "unknown")
        states[state] = states.get(state, 0.0) + float(row.n)
    for state, count in states.items():
        out.gauge(
            "db_connections",
            "Client connections to the server by state (pg_stat_activity).",
            count,
            state=state,
        )
    ages = q.one(PG_AGES)
    out.gauge(
        "db_longest_transaction_seconds",
        "Age of the oldest open transaction.",
        float(ages.xact_age),
    )
    out.gauge(
        "db_longest_query_seconds", "Age of the longest running statement.", float(ages.query_age)
    )
    out.gauge("db_lock_waiting_connections", "Connections waiting for a lock.", ages.lock_waits)
    db = q.one(PG_DATABASE)
    out.gauge("db_connections_max", "The server's max_connections.", db.max_connections)
    out.gauge("db_size_bytes", "Size of the database on disk.", db.size)
    out.gauge(
        "db_server_info",
        "Server dialect and version.",
        1.0,
        dialect="postgresql",
        version=str(db.version).split()[0],
    )
    for name, column, help_text in (
        ("db_transactions_committed_total", "xact_commit", "Transactions committed."),
        ("db_transactions_rolled_back_total", "xact_rollback", "Transactions rolled back."),
        ("db_deadlocks_total", "deadlocks", "Deadlocks detected."),
        ("db_temp_bytes_total", "temp_bytes", "Bytes written to temporary files."),
        ("db_temp_files_total", "temp_files", "Temporary files created."),
        ("db_blocks_hit_total", "blks_hit", "Block reads served by shared buffers."),
        ("db_blocks_read_total", "blks_read", "Blocks read from outside shared buffers."),
    ):
        out.counter(name, f"{help_text} (pg_stat_database)", getattr(db, column) or 0)
    tables: dict[str, dict[str, float | None]] = {
        row.tbl: {stat.column: _float(getattr(row, stat.column)) for stat in PG_TABLE_STATS}
        for row in q.rows(PG_TABLES)
    }
    with q.optional("table sizes", ctx):
        for row in q.rows(PG_TABLE_SIZES):
            if row.tbl in tables:
                tables[row.tbl]["size"] = _float(row.size)
    fold_tables(ctx, tables, (*PG_TABLE_STATS, SIZE_STAT), out, options.table_limit)
    if options.track_statements:
        postgres_statements(q, ctx, out, options, str(db.preload))


def postgres_statements(
    q: Queries, ctx: ScrapeContext, out: Families, options: Options, preload: str
) -> None:
    installed = q.rows("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if "pg_stat_statements" not in [p.strip() for p in preload.split(",")]:
        ctx.note("statement metrics off: pg_stat_statements is not in shared_preload_libraries")
        return
    if not installed:
        ctx.note("statement metrics off: CREATE EXTENSION pg_stat_statements in this database")
        return
    with q.optional("statement metrics", ctx):
        rows = [
            (statement_type(r.word), table_name(r.tbl), float(r.calls), float(r.seconds))
            for r in q.rows(PG_STATEMENTS, first=PG_FIRST_WORD, main=PG_MAIN_TABLE)
        ]
        statement_families(ctx, rows, out, options.table_limit, "pg_stat_statements")


# -- MySQL / MariaDB --------------------------------------------------------------------------

MYSQL_VARIABLES = (
    "SELECT @@max_connections AS max_connections, @@performance_schema AS perf,"
    " @@version AS version, DATABASE() AS db"
)
MYSQL_TABLES = """
SELECT TABLE_NAME AS tbl, TABLE_ROWS AS live, DATA_LENGTH + INDEX_LENGTH AS size
FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'
"""
MYSQL_TABLE_IO = """
SELECT OBJECT_NAME AS tbl, COUNT_FETCH AS rows_read, COUNT_INSERT AS inserted,
  COUNT_UPDATE AS updated, COUNT_DELETE AS deleted
FROM performance_schema.table_io_waits_summary_by_table
WHERE OBJECT_SCHEMA = DATABASE() AND OBJECT_TYPE = 'TABLE'
"""
MYSQL_DIGESTS = """
SELECT DIGEST_TEXT AS digest, COUNT_STAR AS calls, SUM_TIMER_WAIT AS picoseconds
FROM performance_schema.events_statements_summary_by_digest
WHERE SCHEMA_NAME = DATABASE() AND DIGEST_TEXT IS NOT NULL
"""


def mysql_status(q: Queries) -> dict[str, float]:
    names = ", ".join(f"'{n}'" for n in (*MYSQL_STATUS, "Threads_connected", "Threads_running"))
    commands = ", ".join(f"'Com_{c}'" for c in MYSQL_COMMANDS)
    rows = q.rows(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names}, {commands})")
    status: dict[str, float] = {}
    for name, value in rows:
        with contextlib.suppress(TypeError, ValueError):
            status[str(name)] = float(value)
    return status


def mysql_families(q: Queries, ctx: ScrapeContext, out: Families, options: Options) -> None:
    variables = q.one(MYSQL_VARIABLES)
    status = mysql_status(q)
    dialect = "mariadb" if q.flavour == "mariadb" else "mysql"
    out.gauge(
        "db_server_info",
        "Server dialect and version.",
        1.0,
        dialect=dialect,
        version=str(variables.version).split("-")[0],
    )
    out.gauge("db_connections_max", "The server's max_connections.", variables.max_connections)
    connected = status.get("Threads_connected", 0.0)
    running = status.get("Threads_running", 0.0)
    help_text = "Client connections by state (Threads_running, Threads_connected)."
    out.gauge("db_connections", help_text, running, state="active")
    out.gauge("db_connections", help_text, max(0.0, connected - running), state="idle")
    for variable, (name, kind, help_text, scale) in MYSQL_STATUS.items():
        if variable in status:
            out.add(kind, name, help_text, status[variable] * scale)
    for command in MYSQL_COMMANDS:
        value = status.get(f"Com_{command}")
        if value is not None:
            out.counter(
                "db_commands", "Statements received by type (Com_*).", value, command=command
            )
    tables: dict[str, dict[str, float | None]] = {}
    size = 0.0
    for row in q.rows(MYSQL_TABLES):
        tables[str(row.tbl)] = {"live": _float(row.live), "size": _float(row.size)}
        size += float(row.size or 0)
    out.gauge(
        "db_size_bytes", "Data and index size of the database's tables (information_schema).", size
    )
    performance_schema = bool(int(variables.perf or 0))
    if performance_schema:
        for row in q.rows(MYSQL_TABLE_IO):
            values = tables.setdefault(str(row.tbl), {})
            for column in ("rows_read", "inserted", "updated", "deleted"):
                values[column] = _float(getattr(row, column))
    else:
        ctx.note("per-table row counters off: performance_schema is disabled")
    fold_tables(ctx, tables, (*MYSQL_TABLE_STATS, SIZE_STAT), out, options.table_limit)
    if not options.track_statements:
        return
    if not performance_schema:
        ctx.note(
            "statement metrics off: performance_schema is disabled "
            "(start the server with performance_schema=ON)"
        )
        return
    with q.optional("statement metrics", ctx):
        rows = []
        for row in q.rows(MYSQL_DIGESTS):
            kind, table = classify_statement(str(row.digest))
            rows.append((kind, table, float(row.calls), float(row.picoseconds) * 1e-12))
        statement_families(ctx, rows, out, options.table_limit, "performance_schema digests")


# -- SQLite -----------------------------------------------------------------------------------

SQLITE_TABLE_SIZES = """
SELECT name AS tbl, sum(pgsize) AS size FROM dbstat
WHERE name IN (SELECT name FROM sqlite_schema WHERE type = 'table') GROUP BY name
"""


def sqlite_families(
    q: Queries, ctx: ScrapeContext, out: Families, options: Options, path: str | None
) -> None:
    page_size = float(q.one("PRAGMA page_size")[0])
    pages = float(q.one("PRAGMA page_count")[0])
    free = float(q.one("PRAGMA freelist_count")[0])
    out.gauge(
        "db_server_info",
        "Server dialect and version.",
        1.0,
        dialect="sqlite",
        version=sqlite3.sqlite_version,
    )
    out.gauge("db_size_bytes", "Database size: pages x page size.", pages * page_size)
    out.gauge("db_sqlite_pages", "Pages in the database file (PRAGMA page_count).", pages)
    out.gauge("db_sqlite_free_pages", "Unused pages (PRAGMA freelist_count).", free)
    out.gauge("db_sqlite_page_size_bytes", "PRAGMA page_size.", page_size)
    if path:
        with contextlib.suppress(OSError):
            out.gauge("db_file_size_bytes", "Size of the database file.", os.path.getsize(path))
    tables: dict[str, dict[str, float | None]] = {}
    with q.optional("table sizes (dbstat)", ctx):
        tables = {str(r.tbl): {"size": _float(r.size)} for r in q.rows(SQLITE_TABLE_SIZES)}
    fold_tables(ctx, tables, (SIZE_STAT,), out, options.table_limit, ("size",))
    if options.track_statements:
        ctx.note("statement metrics: SQLite does not track statements")


# -- the collector ----------------------------------------------------------------------------


def flavour(conn: Connection) -> str:
    """postgresql, mariadb, mysql, sqlite, or "" for a dialect without server statistics.

    MariaDB is told apart from MySQL only once connected (a `mysql://` URL may reach either).
    """
    name = conn.dialect.name
    if name in ("mysql", "mariadb"):
        return "mariadb" if getattr(conn.dialect, "is_mariadb", False) else "mysql"
    return name if name in ("postgresql", "sqlite") else ""


class DatabaseCollector(SourceCollector):
    kind = "database"

    def __init__(
        self,
        name: str,
        engine: Engine,
        options: Options,
        *,
        owns_engine: bool,
        connect_deadline: _ConnectDeadline | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        super().__init__(name, secrets=secrets)
        self.engine = engine
        self.options = options
        self.owns_engine = owns_engine
        self._connect_deadline = connect_deadline

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        pool = read_pool(self.engine.pool)  # before borrowing: never counts the exporter
        yield from pool_families(self.name, pool)
        if pool.exhausted and not self.owns_engine:
            ctx.note("application pool exhausted: server not queried this scrape")
            return
        out = Families(self.name)
        if self._connect_deadline is not None:
            self._connect_deadline.deadline = ctx.deadline
        try:
            with self.engine.connect() as conn:
                q = Queries(
                    conn, flavour(conn), ctx.deadline, self.options.statement_timeout_seconds
                )
                started = time.perf_counter()
                q.rows("SELECT 1")
                ping = time.perf_counter() - started
                self._server_families(q, ctx, out)
        finally:
            if self._connect_deadline is not None:
                self._connect_deadline.deadline = None
        yield up_family(
            "db_up", "1 if the database answered this scrape.", ["database"], [self.name], True
        )
        ping_family = GaugeMetricFamily(
            "db_ping_duration_seconds",
            "Round trip of SELECT 1 on a pooled connection.",
            labels=["database"],
        )
        ping_family.add_metric([self.name], ping)
        yield ping_family
        yield from out

    def _server_families(self, q: Queries, ctx: ScrapeContext, out: Families) -> None:
        if q.flavour == "postgresql":
            postgres_families(q, ctx, out, self.options)
        elif q.flavour in ("mariadb", "mysql"):
            mysql_families(q, ctx, out, self.options)
        elif q.flavour == "sqlite":
            sqlite_families(q, ctx, out, self.options, self.engine.url.database)
        else:
            ctx.note(f"server statistics not supported for dialect {self.engine.dialect.name}")

    def down_families(self) -> list[Metric]:
        """db_up 0, and the pool numbers (reading the pool object needs no I/O)."""
        families: list[Metric] = [
            up_family(
                "db_up", "1 if the database answered this scrape.", ["database"], [self.name], False
            )
        ]
        with contextlib.suppress(Exception):
            families.extend(pool_families(self.name, read_pool(self.engine.pool)))
        return families

    def classify(self, exc: BaseException) -> str:
        if isinstance(exc, DBAPIError):
            return classify_dbapi_error(exc)
        if isinstance(exc, SQLAlchemyError) and "timeout" in str(exc).lower():
            return "timeout"
        return classify_error(exc)

    def close(self) -> None:
        if self.owns_engine:
            self.engine.dispose()


#: words in driver error messages -> bounded reason (message text itself is never shown)
_DBAPI_REASONS: tuple[tuple[str, str], ...] = (
    ("statement timeout", "timeout"),
    ("lock timeout", "timeout"),
    ("max_statement_time", "timeout"),
    ("timed out", "timeout"),
    ("timeout", "timeout"),
    ("connection refused", "refused"),
    ("can't connect", "refused"),
    ("password authentication failed", "auth"),
    ("access denied", "auth"),
    ("no pg_hba.conf entry", "auth"),
    ("does not exist", "error"),
    ("unable to open database file", "connection"),
    ("could not translate host name", "unreachable"),
    ("no route to host", "unreachable"),
    ("server closed the connection", "connection"),
    ("lost connection", "connection"),
)


def classify_dbapi_error(exc: DBAPIError) -> str:
    message = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    for words, reason in _DBAPI_REASONS:
        if words in message:
            return reason
    return classify_error(exc)
