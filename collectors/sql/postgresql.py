"""PostgreSQL (psycopg 3): connection settings, time limits and the statistics views.

psycopg has no read timeout: besides the server-side `statement_timeout`, the connection
gets TCP keepalives and `tcp_user_timeout` (a dead peer is noticed in seconds, not after the
kernel's 2 h), and the client-side guard shuts the socket down at the deadline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection

from collectors.base import ScrapeContext
from collectors.specs import FamilySet, MetricSpec, counter, gauge
from collectors.sql import families as common
from collectors.sql.dialect import Action, ConnectSettings, Dialect, ServerOptions, register
from collectors.sql.families import TableStat, as_float, fold_tables
from collectors.sql.prepared import PREPARED_GONE, give_up, prepared
from collectors.sql.queries import Queries
from collectors.sql.statements import (
    PG_FIRST_WORD,
    PG_MAIN_TABLE,
    statement_families,
    statement_type,
    table_name,
)
from collectors.sql.watchdog import socket_interrupter

_DB, _TABLE = ("database",), ("database", "table")

# fmt: off
LONGEST_TRANSACTION = gauge("db_longest_transaction_seconds", "Age of the oldest open transaction.", _DB, unit="seconds", source="pg_stat_activity oldest xact_start (other sessions, server-wide)")  # noqa: E501
LONGEST_QUERY = gauge("db_longest_query_seconds", "Age of the longest running statement.", _DB, unit="seconds", source="pg_stat_activity oldest query_start of an active statement")  # noqa: E501
LOCK_WAITING = gauge("db_lock_waiting_connections", "Connections waiting for a lock.", _DB, source="pg_stat_activity wait_event_type = 'Lock'")  # noqa: E501
#: pg_stat_database column -> spec
DATABASE_COUNTERS: tuple[tuple[str, MetricSpec], ...] = (
    ("xact_commit", counter("db_transactions_committed_total", "Transactions committed, the exporter's own excluded. (pg_stat_database)", _DB, source="pg_stat_database xact_commit minus the exporter's own")),  # noqa: E501
    ("xact_rollback", counter("db_transactions_rolled_back_total", "Transactions rolled back, the exporter's own excluded. (pg_stat_database)", _DB, source="pg_stat_database xact_rollback minus the exporter's own")),  # noqa: E501
    ("deadlocks", common.DEADLOCKS),
    ("temp_bytes", counter("db_temp_bytes_total", "Bytes written to temporary files. (pg_stat_database)", _DB, unit="bytes", source="pg_stat_database temp_bytes")),  # noqa: E501
    ("temp_files", counter("db_temp_files_total", "Temporary files created. (pg_stat_database)", _DB, source="pg_stat_database temp_files")),  # noqa: E501
    ("blks_hit", counter("db_blocks_hit_total", "Block reads served by shared buffers. (pg_stat_database)", _DB, source="pg_stat_database blks_hit")),  # noqa: E501
    ("blks_read", counter("db_blocks_read_total", "Blocks read from outside shared buffers. (pg_stat_database)", _DB, source="pg_stat_database blks_read")),  # noqa: E501
)
#: pg_stat_database column -> the name own_counts records the exporter's share under
OWN_TRANSACTION_COUNTERS = {"xact_commit": "commit", "xact_rollback": "rollback"}
#: pg_stat_user_tables columns -> specs
TABLE_STATS: tuple[TableStat, ...] = (
    *common.ROW_STATS,
    TableStat(gauge("db_table_dead_rows", "Estimated dead rows (n_dead_tup).", _TABLE, source="pg_stat_user_tables n_dead_tup"), "dead"),  # noqa: E501
    TableStat(counter("db_table_seq_scans_total", "Sequential scans (seq_scan).", _TABLE, source="pg_stat_user_tables seq_scan"), "seq_scan"),  # noqa: E501
    TableStat(counter("db_table_index_scans_total", "Index scans (idx_scan).", _TABLE, source="pg_stat_user_tables idx_scan"), "idx_scan"),  # noqa: E501
    TableStat(gauge("db_table_last_vacuum_age_seconds", "Time since the last (auto)vacuum; absent if never.", _TABLE, unit="seconds", source="pg_stat_user_tables greatest(last_vacuum, last_autovacuum)"), "vacuum_age", max),  # noqa: E501
    TableStat(gauge("db_table_last_analyze_age_seconds", "Time since the last (auto)analyze; absent if never.", _TABLE, unit="seconds", source="pg_stat_user_tables greatest(last_analyze, last_autoanalyze)"), "analyze_age", max),  # noqa: E501
)
# fmt: on

_SHARED = (common.DEADLOCKS, *common.SPECS)

#: Connections by state, and the oldest transaction, statement and lock waits of the other
#: sessions: one pass over pg_stat_activity.
ACTIVITY = """
SELECT coalesce(state, 'unknown') AS state, count(*) AS n,
  extract(epoch FROM max(clock_timestamp() - xact_start)
          FILTER (WHERE pid <> pg_backend_pid())) AS xact_age,
  extract(epoch FROM max(clock_timestamp() - query_start)
          FILTER (WHERE state = 'active' AND pid <> pg_backend_pid())) AS query_age,
  count(*) FILTER (WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()) AS lock_waits
FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1
"""
DATABASE = f"""
SELECT {", ".join(column for column, _ in DATABASE_COUNTERS)}, pg_postmaster_start_time(),
  stats_reset
FROM pg_stat_database WHERE datname = current_database()
"""
#: What changes only with a restart (read again at once after one) or a CREATE EXTENSION:
#: read every SETTINGS_SECONDS.
SETTINGS = """
SELECT current_setting('max_connections')::int AS max_connections,
  current_setting('server_version') AS version,
  current_setting('shared_preload_libraries') AS preload,
  EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS statements
"""
SETTINGS_SECONDS = 300.0
#: Sizes on disk (the server stats every file of the database for them): every SIZES_SECONDS.
SIZES_SECONDS = 60.0
_TABLE_NAME = "CASE WHEN schemaname = 'public' THEN relname ELSE schemaname || '.' || relname END"
#: pg_stat_user_tables: TABLE_STATS column -> expression
TABLE_EXPRESSIONS = {
    "rows_read": "coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)",
    "inserted": "n_tup_ins",
    "updated": "n_tup_upd",
    "deleted": "n_tup_del",
    "live": "n_live_tup",
    "dead": "n_dead_tup",
    "seq_scan": "seq_scan",
    "idx_scan": "idx_scan",
    "vacuum_age": (
        "extract(epoch FROM clock_timestamp() - greatest(last_vacuum, last_autovacuum))::float8"
    ),
    "analyze_age": (
        "extract(epoch FROM clock_timestamp() - greatest(last_analyze, last_autoanalyze))::float8"
    ),
}
#: the table's name, then each of TABLE_STATS in order
TABLES = f"""
SELECT {_TABLE_NAME}, {", ".join(TABLE_EXPRESSIONS[stat.column] for stat in TABLE_STATS)}
FROM pg_stat_user_tables
"""
# The database (tbl NULL), then its tables. Tables someone holds an ACCESS EXCLUSIVE lock on
# are skipped: sizing them would wait.
SIZES = f"""
SELECT NULL AS tbl, pg_database_size(current_database()) AS size
UNION ALL
SELECT {_TABLE_NAME} AS tbl,
  CASE WHEN NOT EXISTS (
    SELECT 1 FROM pg_locks l WHERE l.relation = s.relid AND l.mode = 'AccessExclusiveLock')
  THEN pg_total_relation_size(s.relid) END AS size
FROM pg_stat_user_tables s
"""
#: the two patterns are constants, dollar-quoted so the statement takes no parameters
STATEMENTS = f"""
SELECT (regexp_match(query, $re${PG_FIRST_WORD}$re$, 'i'))[1],
  (regexp_match(query, $re${PG_MAIN_TABLE}$re$, 'i'))[1],
  sum(calls), sum(total_exec_time) / 1000.0
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
GROUP BY 1, 2
"""
CONNECTION_STATES = {
    "active": "active",
    "idle": "idle",
    "idle in transaction": "idle_in_transaction",
    "idle in transaction (aborted)": "idle_in_transaction_aborted",
    "fastpath function call": "fastpath_function_call",
    "disabled": "disabled",
}
#: states shown even at 0, so dashboards and alerts never see them vanish
ALWAYS_REPORTED_STATES = ("active", "idle", "idle_in_transaction")
#: TCP keepalive probing of idle pooled connections: idle, interval (s), probes
KEEPALIVES = (10, 5, 3)
_SET_LIMITS = text(
    "SELECT set_config('statement_timeout', :t, true), set_config('lock_timeout', :t, true)"
)
#: in front of every batch of statements: the same limits, in the same round trip
_SET_LIMITS_INLINE = (
    "SELECT set_config('statement_timeout', '{0}', true), set_config('lock_timeout', '{0}', true)"
)
#: connection info key: (the transaction, the limit) last set on the connection
_LIMIT_SET = "afirgen_exporter_statement_limit"


class PostgreSQL(Dialect):
    name = "postgresql"
    url_names = ("postgresql",)
    default_driver = "psycopg"
    drivers = frozenset({"psycopg"})
    autocommit_reads = True
    specs = (
        LONGEST_TRANSACTION,
        LONGEST_QUERY,
        LOCK_WAITING,
        *(spec for _, spec in DATABASE_COUNTERS if spec not in _SHARED),
        *(stat.spec for stat in TABLE_STATS if stat.spec not in _SHARED),
    )

    def engine_arguments(self, url: URL, settings: ConnectSettings) -> dict[str, Any]:
        idle, interval, count = KEEPALIVES
        return {
            "connect_args": {
                "application_name": settings.application_name,
                "keepalives": 1,
                "keepalives_idle": idle,
                "keepalives_interval": interval,
                "keepalives_count": count,
                # data unacknowledged this long closes the connection (a dead network)
                "tcp_user_timeout": int((settings.statement_timeout_seconds + 5) * 1000),
            }
        }

    def bound_connect(self, cparams: dict[str, Any], seconds: float) -> None:
        cparams["connect_timeout"] = max(2, math.ceil(seconds))  # libpq: whole s, min 2

    def session_start(self, q: Queries, first: bool) -> Mapping[str, int]:
        """PostgreSQL runs a session's start as one committed transaction; SQLAlchemy ends
        its set-up on an engine's first connection with a rollback (in a transaction: on an
        autocommit engine each of its statements commits instead, uncounted here, which is
        harmless: that first connection comes before the first reading sets the base)."""
        return {"commit": 1, "rollback": 1} if first and not q.autocommit else {"commit": 1}

    def ping_statement(self, conn: Connection) -> str:
        """From PostgreSQL 15 on, the ping also asks the server to report this session's
        counts as soon as the transaction ends (else it may wait seconds): the exporter's
        own transactions are then in pg_stat_database by its next reading, where they are
        taken out (`own_counts`)."""
        version = conn.dialect.server_version_info
        if version is not None and version >= (15,):
            return "SELECT pg_stat_force_next_flush()"
        return "SELECT 1"

    def limited(self, conn: Connection, sql: str, seconds: float) -> str:
        limit = _limit(seconds)
        # transaction-local: set again only when it changes (the limit is capped, so it is the
        # same for every statement of a scrape until the deadline comes closer than the cap)
        transaction = conn.get_transaction()
        last = conn.info.get(_LIMIT_SET)
        if transaction is not None and last is not None and last[0] is transaction:
            if last[1] == limit:
                return sql
        conn.execute(_SET_LIMITS, {"t": limit})
        conn.info[_LIMIT_SET] = (conn.get_transaction(), limit)
        return sql

    def run(
        self, q: Queries, cursor: Any, statements: Sequence[str], seconds: float
    ) -> list[list[tuple[Any, ...]]]:
        """One round trip: the transaction-local limits, then every statement, as one string
        by the simple protocol (psycopg sends a statement without parameters that way; the
        server applies statement_timeout to each statement in it). On the exporter's own
        autocommit engine the statements are prepared on the server once and the string
        carries `EXECUTE`s (`collectors.sql.prepared`). An application's engine on another
        driver (embedded mode) gets one round trip per statement."""
        if q.conn.dialect.driver != "psycopg":
            return super().run(q, cursor, statements, seconds)
        limits = _SET_LIMITS_INLINE.format(_limit(seconds))
        if q.autocommit:
            executes = prepared(q, cursor, limits, statements)
            if executes is not None:
                try:
                    return _simple(q, cursor, limits, executes)
                except Exception as exc:
                    if getattr(exc, "sqlstate", None) not in PREPARED_GONE:
                        raise
                    give_up(q, cursor.connection)  # another server session: see prepared
        return _simple(q, cursor, limits, statements)

    def interrupter(self, dbapi_connection: Any) -> tuple[Action, Action]:
        return socket_interrupter(dbapi_connection.fileno())

    def start_read_only(self, conn: Connection) -> None:
        conn.execute(text("SET TRANSACTION READ ONLY"))

    def server_families(
        self, q: Queries, ctx: ScrapeContext, out: FamilySet, options: ServerOptions
    ) -> None:
        activity, (db,), table_rows = q.batch((ACTIVITY, DATABASE, TABLES))
        states = dict.fromkeys(ALWAYS_REPORTED_STATES, 0.0)
        for state_name, count, *_ in activity:
            state = CONNECTION_STATES.get(state_name, "unknown")
            states[state] = states.get(state, 0.0) + float(count)
        for state, value in states.items():
            out.add(common.CONNECTIONS, value, state)
        out.add(LONGEST_TRANSACTION, _oldest(row[2] for row in activity))
        out.add(LONGEST_QUERY, _oldest(row[3] for row in activity))
        out.add(LOCK_WAITING, sum(float(row[4]) for row in activity))
        counters = dict(zip((column for column, _ in DATABASE_COUNTERS), db, strict=False))
        started, reset = db[len(DATABASE_COUNTERS) :]
        own = OWN_TRANSACTION_COUNTERS
        if q.own is not None:  # the exporter's own transactions are not served
            served = q.own.serve(
                tuple(own.values()), [counters[c] or 0 for c in own], (started, reset)
            )
            if served is None:
                ctx.note("transaction counters start at the next scrape")
                counters = {c: v for c, v in counters.items() if c not in own}
            else:
                counters.update(zip(own, served, strict=True))
        for column, spec in DATABASE_COUNTERS:
            if column in counters:
                out.add(spec, counters[column] or 0)
        settings = ctx.every(
            "settings", SETTINGS_SECONDS, lambda: tuple(q.tuples(SETTINGS)[0]), key=started
        )
        max_connections, version, preload, installed = settings
        out.add(common.CONNECTIONS_MAX, max_connections)
        out.add(common.SERVER_INFO, 1.0, self.name, str(version).split()[0])
        columns = [stat.column for stat in TABLE_STATS]
        # counts come as int, ages as float (float8 in TABLES), never Decimal: no conversion
        tables: dict[str, dict[str, float | None]] = {
            row[0]: dict(zip(columns, row[1:], strict=True)) for row in table_rows
        }
        sizes = ctx.every("sizes", SIZES_SECONDS, lambda: self._sizes(q, ctx))
        if sizes is not None:
            database_size = sizes.get(None)
            if database_size is not None:
                out.add(common.SIZE, database_size)
            for table, size in sizes.items():
                if table is not None and table in tables:
                    tables[table]["size"] = size
        fold_tables(ctx, tables, (*TABLE_STATS, common.SIZE_STAT), out, options.table_limit)
        if options.track_statements:
            self._statements(q, ctx, out, options, str(preload), bool(installed))

    def _sizes(self, q: Queries, ctx: ScrapeContext) -> dict[str | None, float | None] | None:
        """The database's size (key None) and its tables'; None when skipped this scrape."""
        with q.optional("sizes", ctx):
            return {table: as_float(size) for table, size in q.tuples(SIZES)}
        return None

    def _statements(
        self,
        q: Queries,
        ctx: ScrapeContext,
        out: FamilySet,
        options: ServerOptions,
        preload: str,
        installed: bool,
    ) -> None:
        if "pg_stat_statements" not in [p.strip() for p in preload.split(",")]:
            ctx.note("statement metrics off: pg_stat_statements is not in shared_preload_libraries")
            return
        if not installed:
            ctx.note("statement metrics off: CREATE EXTENSION pg_stat_statements in this database")
            return
        with q.optional("statement metrics", ctx):
            rows = [
                (statement_type(word), table_name(table), float(calls), float(seconds))
                for word, table, calls, seconds in q.tuples(STATEMENTS)
            ]
            statement_families(ctx, rows, out, options.table_limit)


def _simple(
    q: Queries, cursor: Any, limits: str, statements: Sequence[str]
) -> list[list[tuple[Any, ...]]]:
    """`limits` and `statements` as one simple-protocol string; each statement's rows."""
    with q.round_trip():
        cursor.execute(";\n".join((limits, *statements)))
    results = []
    while cursor.nextset():
        results.append(cursor.fetchall())
    return results


def _limit(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}ms"


def _oldest(ages: Iterable[Any]) -> float:
    """The largest of the rows' ages in seconds (0 when no other session has one)."""
    return max((float(age) for age in ages if age is not None), default=0.0)


register(PostgreSQL())
