"""SQLite (the standard library's sqlite3): the file opened read-only, pages and dbstat.

SQLite runs in-process: its "server-side" statement limit is the client-side guard, which
calls `Connection.interrupt()` (safe from another thread) at the deadline. Nothing is set on
the connection, so a pooled connection is left as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import QueuePool

from collectors.base import ScrapeContext
from collectors.specs import FamilySet, gauge
from collectors.sql import families as common
from collectors.sql.dialect import Action, ConnectSettings, Dialect, ServerOptions, register
from collectors.sql.families import SIZE_STAT, as_float, fold_tables
from collectors.sql.queries import Queries

if TYPE_CHECKING:  # imported where a SQLite database is opened: 0.8 MiB otherwise unused
    import sqlite3

_DB = ("database",)

# fmt: off
PAGES = gauge("db_sqlite_pages", "Pages in the database file (PRAGMA page_count).", _DB, source="PRAGMA page_count")  # noqa: E501
FREE_PAGES = gauge("db_sqlite_free_pages", "Unused pages (PRAGMA freelist_count).", _DB, source="PRAGMA freelist_count")  # noqa: E501
PAGE_SIZE = gauge("db_sqlite_page_size_bytes", "PRAGMA page_size.", _DB, unit="bytes", source="PRAGMA page_size")  # noqa: E501
FILE_SIZE = gauge("db_file_size_bytes", "Size of the database file.", _DB, unit="bytes", source="os.path.getsize() of the file")  # noqa: E501
# fmt: on

TABLE_SIZES = """
SELECT name AS tbl, sum(pgsize) AS size FROM dbstat
WHERE name IN (SELECT name FROM sqlite_schema WHERE type = 'table') GROUP BY name
"""


class SQLite(Dialect):
    name = "sqlite"
    url_names = ("sqlite",)
    default_driver = "pysqlite"
    drivers = frozenset({"pysqlite"})
    specs = (PAGES, FREE_PAGES, PAGE_SIZE, FILE_SIZE)
    limits_on_server = False

    def check_url(self, url: URL) -> None:
        if url.database in (None, "", ":memory:"):
            raise ValueError("an in-memory SQLite database cannot be watched: give a file path")

    def engine_arguments(self, url: URL, settings: ConnectSettings) -> dict[str, Any]:
        path = url.database or ""

        def open_read_only() -> sqlite3.Connection:
            import sqlite3

            # mode=ro: the exporter never creates or changes the file
            return sqlite3.connect(
                f"file:{path}?mode=ro",
                uri=True,
                timeout=settings.connect_seconds(),
                check_same_thread=False,
            )

        return {"creator": open_read_only, "poolclass": QueuePool}

    def bound_connect(self, cparams: dict[str, Any], seconds: float) -> None:
        """The creator opens the file; there is no network connect to bound."""

    def limited(self, conn: Connection, sql: str, seconds: float) -> str:
        return sql  # `limits_on_server` is False: Queries interrupts it after `seconds`

    def interrupter(self, dbapi_connection: Any) -> tuple[Action, Action]:
        return dbapi_connection.interrupt, lambda: None  # no descriptor of ours to release

    @contextlib.contextmanager
    def savepoint(self, conn: Connection) -> Iterator[None]:
        yield  # reads only: a failed part leaves nothing to roll back

    def start_read_only(self, conn: Connection) -> None:
        conn.exec_driver_sql("PRAGMA query_only = ON")

    def end_read_only(self, conn: Connection) -> None:
        conn.exec_driver_sql("PRAGMA query_only = OFF")

    def server_families(
        self, q: Queries, ctx: ScrapeContext, out: FamilySet, options: ServerOptions
    ) -> None:
        page_size = float(q.one("PRAGMA page_size")[0])
        pages = float(q.one("PRAGMA page_count")[0])
        free = float(q.one("PRAGMA freelist_count")[0])
        import sqlite3

        out.add(common.SERVER_INFO, 1.0, self.name, sqlite3.sqlite_version)
        out.add(common.SIZE, pages * page_size)
        out.add(PAGES, pages)
        out.add(FREE_PAGES, free)
        out.add(PAGE_SIZE, page_size)
        if options.path:
            with contextlib.suppress(OSError):
                out.add(FILE_SIZE, os.path.getsize(options.path))
        tables: dict[str, dict[str, float | None]] = {}
        with q.optional("table sizes (dbstat)", ctx):
            tables = {str(r.tbl): {"size": as_float(r.size)} for r in q.rows(TABLE_SIZES)}
        fold_tables(ctx, tables, (SIZE_STAT,), out, options.table_limit, ("size",))
        if options.track_statements:
            ctx.note("statement metrics: SQLite does not track statements")


register(SQLite())
