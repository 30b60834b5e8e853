"""collectors.sql's public API, on the real servers: the per-statement time limit works on
PostgreSQL, MariaDB and SQLite and leaves nothing set on the pooled connection; read-only
transactions refuse writes and leave the connection writable afterwards; the dialect
registry."""

from __future__ import annotations

import sqlite3
import time

import pytest
import sqlalchemy

from collectors.base import Deadline
from collectors.sql import BoundedEngine, check_url, classify
from collectors.sql.dialect import dialects, for_url
from tests.dbhelp import engine_for, execute
from tests.tq_support import unique

#: this run's own table on the shared servers (created and dropped by the fixture)
TABLE = unique("db_api")

#: a statement that runs for seconds on each dialect, and how to read the session's own limit
SLOW = {
    "postgresql": ("SELECT pg_sleep(5)", "SHOW statement_timeout", "0"),
    "mariadb": ("SELECT SLEEP(5)", "SELECT @@max_statement_time", 0.0),
    "sqlite": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        "PRAGMA query_only",
        0,
    ),
}


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def app_engine(request, tmp_path):
    """An application's engine with a pool of one, so every checkout is the same connection."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    elif request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
    else:
        url = f"sqlite:///{tmp_path / 'api.db'}"
        sqlite3.connect(tmp_path / "api.db").close()
    execute(url, f"DROP TABLE IF EXISTS {TABLE}", f"CREATE TABLE {TABLE} (id int)")
    with engine_for(url, pool_size=1, max_overflow=0) as engine:
        yield request.param, engine
    execute(url, f"DROP TABLE IF EXISTS {TABLE}")


def test_statement_limit_cuts_a_slow_statement_and_leaves_no_setting(app_engine):
    dialect, engine = app_engine
    slow, show_limit, unlimited = SLOW[dialect]
    bounded = BoundedEngine(engine)
    with bounded.connect(Deadline.after(30), cap=0.5) as q:
        started = time.monotonic()
        with pytest.raises(Exception) as info:  # noqa: B017 - the driver's own error type
            q.rows(slow)
        took = time.monotonic() - started
    assert classify(info.value) == "timeout"
    assert took < 0.5 + 2, took  # the 0.5 s cap, far inside the 30 s deadline
    with engine.connect() as conn:  # the same pooled connection, as the application gets it
        assert conn.execute(sqlalchemy.text(show_limit)).scalar() == unlimited
        assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    assert engine.pool.checkedout() == 0


def test_read_only_transaction_refuses_writes_and_leaves_the_connection_writable(app_engine):
    _, engine = app_engine
    bounded = BoundedEngine(engine)
    with bounded.connect(Deadline.after(10), cap=5) as q:
        with pytest.raises(sqlalchemy.exc.DBAPIError), q.read_only():
            q.rows(f"INSERT INTO {TABLE} VALUES (1)")
        with q.read_only():
            assert q.one(f"SELECT count(*) FROM {TABLE}")[0] == 0
    with engine.connect() as conn:  # the same connection, read-write again
        conn.execute(sqlalchemy.text(f"INSERT INTO {TABLE} VALUES (2)"))
        conn.commit()
        assert conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {TABLE}")).scalar() == 1


def test_optional_part_is_skipped_with_a_note_and_the_rest_goes_on(app_engine):
    from collectors.base import ScrapeContext

    _, engine = app_engine
    ctx = ScrapeContext(Deadline.after(10))
    with BoundedEngine(engine).connect(ctx.deadline, cap=5) as q:
        with q.optional("a missing view", ctx):
            q.rows("SELECT * FROM afx_db_no_such_view")
        assert q.one(f"SELECT count(*) FROM {TABLE}")[0] == 0
    assert ctx.notes == ["a missing view skipped this scrape (error)"]


def test_registry_knows_each_url_name_and_refuses_others():
    assert [d.name for d in dialects()] == ["postgresql", "mysql", "mariadb", "sqlite"]
    url = sqlalchemy.engine.make_url
    assert for_url(url("mariadb+pymysql://u@h/d")).name == "mariadb"
    assert for_url(url("mysql://u@h/d")).name == "mysql"
    assert check_url("postgresql://u@h/d") == "postgresql://u@h/d"
    with pytest.raises(ValueError, match="supported: postgresql, mysql, mariadb, sqlite"):
        check_url("oracle://u@h/d")


def test_an_application_connection_gets_its_own_driver_timeouts_back(mariadb_url):
    """PyMySQL's read timeout follows our deadline only while we hold the connection."""
    with engine_for(mariadb_url, pool_size=1, max_overflow=0) as engine:
        with BoundedEngine(engine).connect(Deadline.after(0.5), cap=0.5) as q:
            q.rows("SELECT 1")  # read timeout now about 0.75 s on this connection
        with engine.connect() as conn:  # the same connection, as the application gets it
            slept = conn.execute(sqlalchemy.text("SELECT SLEEP(1.5)")).scalar()
        assert slept == 0  # ran to the end: no timeout of ours left on it


def test_batch_returns_each_statements_rows_in_order_as_tuples(app_engine):
    _, engine = app_engine
    execute(
        str(engine.url.render_as_string(hide_password=False)),
        f"INSERT INTO {TABLE} VALUES (7), (3)",
    )
    with BoundedEngine(engine).connect(Deadline.after(10), cap=5) as q:
        counted, constants, ids, empty = q.batch(
            (
                f"SELECT count(*) FROM {TABLE}",
                "SELECT 1, 'a;b'",
                f"SELECT id FROM {TABLE} ORDER BY id",
                f"SELECT id FROM {TABLE} WHERE id < 0",
            )
        )
    assert (counted, constants, ids, empty) == ([(2,)], [(1, "a;b")], [(3,), (7,)], [])
    assert all(type(row) is tuple for row in (*counted, *constants, *ids))


def test_batch_cuts_a_slow_statement_and_leaves_no_setting(app_engine):
    dialect, engine = app_engine
    slow, show_limit, unlimited = SLOW[dialect]
    with BoundedEngine(engine).connect(Deadline.after(30), cap=0.5) as q:
        started = time.monotonic()
        # the server's error, or on SQLite the client-side interrupt (TimeoutError)
        with pytest.raises((sqlalchemy.exc.DBAPIError, TimeoutError)) as info:
            q.batch(("SELECT 1", slow))
        took = time.monotonic() - started
    assert classify(info.value) == "timeout"
    assert took < 0.5 + 2, took  # the 0.5 s cap, far inside the 30 s deadline
    with engine.connect() as conn:  # the same pooled connection, as the application gets it
        assert conn.execute(sqlalchemy.text(show_limit)).scalar() == unlimited
    assert engine.pool.checkedout() == 0


def test_batch_leaves_no_transaction_open_on_an_application_connection(postgres_url):
    """Even when the application's pool does not roll back on return."""
    import psycopg

    with engine_for(postgres_url, pool_size=1, max_overflow=0, pool_reset_on_return=None) as engine:
        with BoundedEngine(engine).connect(Deadline.after(10), cap=5) as q:
            q.batch(("SELECT 1", "SELECT 2"))
            status = q.conn.connection.dbapi_connection.info.transaction_status
            assert status == psycopg.pq.TransactionStatus.INTRANS
        with engine.connect() as conn:  # the same connection, before it runs anything
            status = conn.connection.dbapi_connection.info.transaction_status
            assert status == psycopg.pq.TransactionStatus.IDLE
