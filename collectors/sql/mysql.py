"""MySQL and MariaDB (PyMySQL): connection settings, time limits, status and schema views.

Both share one driver and the same views; they differ in the server-side statement limit
(MariaDB `SET STATEMENT max_statement_time=... FOR`, MySQL the `MAX_EXECUTION_TIME` hint
on SELECTs), and MariaDB alone has `Innodb_deadlocks`. PyMySQL's read and write timeouts
follow the deadline, checkout by checkout.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.engine import URL, Connection

from collectors.base import ScrapeContext
from collectors.specs import FamilySet, MetricSpec, counter, gauge
from collectors.sql import families as common
from collectors.sql.dialect import Action, ConnectSettings, Dialect, ServerOptions, register
from collectors.sql.families import SIZE_STAT, as_float, fold_tables
from collectors.sql.queries import Queries
from collectors.sql.statements import classify_statement, statement_families
from collectors.sql.watchdog import socket_interrupter

_DB = ("database",)
_STATUS = "SHOW GLOBAL STATUS"

# fmt: off
COMMANDS = counter("db_commands_total", "Statements received by type (Com_*).", ("database", "command"), source=f"{_STATUS} Com_*")  # noqa: E501
#: SHOW GLOBAL STATUS variable -> (spec, multiplier to the base unit)
STATUS: Mapping[str, tuple[MetricSpec, float]] = {
    "Aborted_connects": (counter("db_aborted_connections_total", "Failed connection attempts (Aborted_connects).", _DB, source=f"{_STATUS} Aborted_connects"), 1.0),  # noqa: E501
    "Aborted_clients": (counter("db_aborted_clients_total", "Connections dropped without a proper close (Aborted_clients).", _DB, source=f"{_STATUS} Aborted_clients"), 1.0),  # noqa: E501
    "Innodb_row_lock_waits": (counter("db_row_lock_waits_total", "Times InnoDB waited for a row lock.", _DB, source=f"{_STATUS} Innodb_row_lock_waits"), 1.0),  # noqa: E501
    "Innodb_row_lock_time": (counter("db_row_lock_wait_seconds_total", "Time spent waiting for InnoDB row locks.", _DB, unit="seconds", source=f"{_STATUS} Innodb_row_lock_time (ms)"), 1e-3),  # noqa: E501
    "Innodb_deadlocks": (common.DEADLOCKS, 1.0),  # MariaDB only
    "Slow_queries": (counter("db_slow_queries_total", "Statements slower than long_query_time.", _DB, source=f"{_STATUS} Slow_queries"), 1.0),  # noqa: E501
    "Created_tmp_disk_tables": (counter("db_temp_disk_tables_total", "Internal temporary tables written to disk.", _DB, source=f"{_STATUS} Created_tmp_disk_tables"), 1.0),  # noqa: E501
    "Uptime": (gauge("db_uptime_seconds", "Seconds since the server started.", _DB, unit="seconds", source=f"{_STATUS} Uptime"), 1.0),  # noqa: E501
}
# fmt: on

#: Com_* statement counters exported as db_commands_total{command}
COMMAND_NAMES = (
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
#: information_schema.TABLES / performance_schema table I/O columns -> specs
TABLE_STATS = common.ROW_STATS

VARIABLES = (
    "SELECT @@max_connections AS max_connections, @@performance_schema AS perf,"
    " @@version AS version, DATABASE() AS db"
)
TABLES = """
SELECT TABLE_NAME AS tbl, TABLE_ROWS AS live, DATA_LENGTH + INDEX_LENGTH AS size
FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'
"""
TABLE_IO = """
SELECT OBJECT_NAME AS tbl, COUNT_FETCH AS rows_read, COUNT_INSERT AS inserted,
  COUNT_UPDATE AS updated, COUNT_DELETE AS deleted
FROM performance_schema.table_io_waits_summary_by_table
WHERE OBJECT_SCHEMA = DATABASE() AND OBJECT_TYPE = 'TABLE'
"""
DIGESTS = """
SELECT DIGEST_TEXT AS digest, COUNT_STAR AS calls, SUM_TIMER_WAIT AS picoseconds
FROM performance_schema.events_statements_summary_by_digest
WHERE SCHEMA_NAME = DATABASE() AND DIGEST_TEXT IS NOT NULL
"""
#: TABLE_IO's counters after the table name, as TABLE_STATS columns
_IO_COLUMNS = ("rows_read", "inserted", "updated", "deleted")
_NAMES = ", ".join(f"'{n}'" for n in (*STATUS, "Threads_connected", "Threads_running"))
_COMMANDS = ", ".join(f"'Com_{c}'" for c in COMMAND_NAMES)
STATUS_QUERY = f"SHOW GLOBAL STATUS WHERE Variable_name IN ({_NAMES}, {_COMMANDS})"
MARIADB_STATUS_QUERY = f"""
SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
WHERE VARIABLE_NAME IN ({_NAMES}, {_COMMANDS})
UNION ALL SELECT '@max_connections', @@max_connections
UNION ALL SELECT '@perf', @@performance_schema
UNION ALL SELECT '@version', @@version
"""
#: this session's served Com_* counters (what a new connection's set-up moved)
_SESSION_COMMANDS = f"SHOW SESSION STATUS WHERE Variable_name IN ({_COMMANDS})"
#: a statement's first word, past MariaDB's `SET STATEMENT var=value[, ...] FOR`
_FIRST_WORD = re.compile(
    r"(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/)*"  # blanks and comments
    r"(?:SET\s+STATEMENT\s+.*?\s+FOR\s+)?(\w+)",
    re.IGNORECASE | re.DOTALL,
)
#: first word -> the served Com_* counter it moves (what the exporter and its queue send)
_COMMAND_OF = {
    "SELECT": "select",
    "WITH": "select",
    "START": "begin",
    "BEGIN": "begin",
    "COMMIT": "commit",
    "ROLLBACK": "rollback",
    "SET": "set_option",
    "INSERT": "insert",
    "UPDATE": "update",
    "DELETE": "delete",
    "REPLACE": "replace",
    "CALL": "call_procedure",
    "TRUNCATE": "truncate",
}
#: upper-case name (information_schema) -> the name as SHOW GLOBAL STATUS spells it
_STATUS_NAMES = {
    name.upper(): name
    for name in (
        *STATUS,
        "Threads_connected",
        "Threads_running",
        *(f"Com_{c}" for c in COMMAND_NAMES),
    )
}


class MySQL(Dialect):
    name = "mysql"
    url_names = ("mysql",)
    default_driver = "pymysql"
    drivers = frozenset({"pymysql"})
    specs = (COMMANDS, *(spec for spec, _ in STATUS.values() if spec is not common.DEADLOCKS))

    def engine_arguments(self, url: URL, settings: ConnectSettings) -> dict[str, Any]:
        backstop = settings.statement_timeout_seconds + 5.0  # until the first statement
        return {
            "connect_args": {
                "program_name": settings.application_name,
                "read_timeout": backstop,
                "write_timeout": backstop,
            }
        }

    def bound_connect(self, cparams: dict[str, Any], seconds: float) -> None:
        # PyMySQL's connect_timeout covers the TCP connect only; the greeting and the
        # handshake are reads and writes
        cparams["connect_timeout"] = seconds
        cparams["read_timeout"] = seconds
        cparams["write_timeout"] = seconds

    rollback_sent_when_idle = True  # PyMySQL's rollback() always sends ROLLBACK
    counts_statements = True  # Com_*

    def command(self, sql: str) -> str | None:
        """The Com_* counter a statement moves: its first word, past MariaDB's
        `SET STATEMENT ... FOR` (a served counter's name, or None)."""
        match = _FIRST_WORD.match(sql)
        return _COMMAND_OF.get(match.group(1).upper()) if match else None

    def session_start(self, q: Queries, first: bool) -> Mapping[str, int]:
        """What the driver's statements at connect (PyMySQL: `SET AUTOCOMMIT`, `SET NAMES`)
        and SQLAlchemy's set-up moved, from the session's own status (SHOW moves only
        Com_show_status)."""
        return {
            str(name).lower().removeprefix("com_"): int(value)
            for name, value in q.tuples(_SESSION_COMMANDS)
        }

    def limited(self, conn: Connection, sql: str, seconds: float) -> str:
        if sql[:6].upper() == "SELECT":  # a configured query may be lower-case
            return f"SELECT /*+ MAX_EXECUTION_TIME({max(1, int(seconds * 1000))}) */" + sql[6:]
        return sql  # SHOW has no server-side limit on MySQL: the read timeout bounds it

    def bound_io(self, dbapi_connection: Any, seconds: float) -> Action:
        # PyMySQL applies these to its socket before every read and write (connections.py)
        own = dbapi_connection._read_timeout, dbapi_connection._write_timeout
        dbapi_connection._read_timeout = dbapi_connection._write_timeout = seconds

        def restore() -> None:  # an application's connection gets its own timeouts back
            dbapi_connection._read_timeout, dbapi_connection._write_timeout = own

        return restore

    def interrupter(self, dbapi_connection: Any) -> tuple[Action, Action]:
        return socket_interrupter(dbapi_connection._sock.fileno())

    def start_read_only(self, conn: Connection) -> None:
        conn.exec_driver_sql("START TRANSACTION READ ONLY")

    def server_name(self, conn: Connection) -> str:
        return "mariadb" if getattr(conn.dialect, "is_mariadb", False) else self.name

    def server_families(
        self, q: Queries, ctx: ScrapeContext, out: FamilySet, options: ServerOptions
    ) -> None:
        (max_connections, perf, version), status, table_rows = self._server_state(q)
        out.add(common.SERVER_INFO, 1.0, self.name, str(version).split("-")[0])
        out.add(common.CONNECTIONS_MAX, max_connections)
        connected = status.get("Threads_connected", 0.0)
        running = status.get("Threads_running", 0.0)
        out.add(common.CONNECTIONS, running, "active")
        out.add(common.CONNECTIONS, max(0.0, connected - running), "idle")
        for variable, (spec, scale) in STATUS.items():
            if variable in status:
                out.add(spec, status[variable] * scale)
        self._commands(q, ctx, out, status)
        tables: dict[str, dict[str, float | None]] = {}
        size = 0.0
        for table, live, table_size in table_rows:
            tables[str(table)] = {"live": as_float(live), "size": as_float(table_size)}
            size += float(table_size or 0)
        out.add(common.SIZE, size)
        performance_schema = bool(int(perf or 0))
        if performance_schema:
            for table, *counts in q.tuples(TABLE_IO):
                values = tables.setdefault(str(table), {})
                for column, count in zip(_IO_COLUMNS, counts, strict=True):
                    values[column] = as_float(count)
        else:
            ctx.note("per-table row counters off: performance_schema is disabled")
        fold_tables(ctx, tables, (*TABLE_STATS, SIZE_STAT), out, options.table_limit)
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
            for digest, calls, picoseconds in q.tuples(DIGESTS):
                statement_type, table = classify_statement(str(digest))
                rows.append((statement_type, table, float(calls), float(picoseconds) * 1e-12))
            statement_families(ctx, rows, out, options.table_limit)

    @staticmethod
    def _commands(q: Queries, ctx: ScrapeContext, out: FamilySet, status: dict[str, float]) -> None:
        """db_commands_total: the server's Com_* minus the exporter's own statements."""
        names = tuple(c for c in COMMAND_NAMES if f"Com_{c}" in status)
        values = [status[f"Com_{c}"] for c in names]
        if q.own is not None:
            served = q.own.serve(names, values, since=status.get("Uptime", 0.0))
            if served is None:
                ctx.note("statement counters start at the next scrape")
                return
            values = served
        for command, value in zip(names, values, strict=True):
            out.add(COMMANDS, value, command)

    @staticmethod
    def _server_state(q: Queries) -> tuple[tuple[Any, ...], dict[str, float], list[Any]]:
        """(max_connections, performance_schema, version), the status variables, the tables."""
        (variables,), status_rows, table_rows = q.batch((VARIABLES, STATUS_QUERY, TABLES))
        return variables[:3], _status(status_rows), table_rows


class MariaDB(MySQL):
    name = "mariadb"
    url_names = ("mariadb",)
    specs = ()  # the same families as MySQL

    @staticmethod
    def _server_state(q: Queries) -> tuple[tuple[Any, ...], dict[str, float], list[Any]]:
        """As MySQL's, in two statements: MariaDB's information_schema.GLOBAL_STATUS (what
        SHOW GLOBAL STATUS reads) takes the variables as extra rows."""
        status_rows, table_rows = q.batch((MARIADB_STATUS_QUERY, TABLES))
        variables: dict[str, Any] = {}
        status: list[tuple[str, Any]] = []
        for name, value in status_rows:
            if name.startswith("@"):
                variables[name] = value
            else:  # information_schema spells the names in capitals
                status.append((_STATUS_NAMES.get(name, name), value))
        state = (variables["@max_connections"], variables["@perf"], variables["@version"])
        return state, _status(status), table_rows

    def limited(self, conn: Connection, sql: str, seconds: float) -> str:
        return f"SET STATEMENT max_statement_time={seconds:.3f} FOR {sql}"


def _status(rows: Iterable[tuple[Any, ...]]) -> dict[str, float]:
    status: dict[str, float] = {}
    for name, value in rows:
        with contextlib.suppress(TypeError, ValueError):
            status[str(name)] = float(value)
    return status


register(MySQL())
register(MariaDB())
