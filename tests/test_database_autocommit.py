"""The database collector's own PostgreSQL engine reads in autocommit (collectors.sql.engine):
no transaction is left open between its round trips, the statements it reads are prepared on
its server session (collectors.sql.prepared), the per-statement limits still hold and leave
nothing set, a server session without those statements (a pooler in front) is read all the
same, and the parts that need a transaction of their own (execute, read_only) get one."""

from __future__ import annotations

import os
import time

import pytest
import sqlalchemy

from collectors import database
from collectors.base import Deadline, ScrapeContext
from collectors.database import Target
from collectors.sql import EngineSettings, classify, create_engine
from tests.db_servers import private_postgres
from tests.dbhelp import (
    collect,
    engine_for,
    execute,
    own_database,
    transaction_counts,
    value,
)
from tests.tq_support import unique

APP_NAME = f"afx-db-ac-{os.getpid()}"
#: this run's own table on the shared server (created and dropped by the fixture)
TABLE = unique("db_ac")


@pytest.fixture
def own_engine(postgres_url):
    """The exporter's own engine as the database collector makes it (pool of one)."""
    bounded = create_engine(
        postgres_url, EngineSettings(application_name=APP_NAME, autocommit=True)
    )
    yield bounded
    bounded.close()


@pytest.fixture
def table(postgres_url):
    execute(postgres_url, f"DROP TABLE IF EXISTS {TABLE}", f"CREATE TABLE {TABLE} (id int)")
    yield TABLE
    execute(postgres_url, f"DROP TABLE IF EXISTS {TABLE}")


def session_of(url: str, app_name: str) -> list[tuple[str, str | None]]:
    """(state, backend_xid) of the sessions named `app_name`, seen from another session."""
    with engine_for(url, poolclass=sqlalchemy.pool.NullPool) as engine, engine.connect() as conn:
        rows = conn.execute(
            sqlalchemy.text(
                "SELECT state, backend_xid::text FROM pg_stat_activity WHERE application_name = :a"
            ),
            {"a": app_name},
        )
        return [tuple(r) for r in rows]


def test_scrapes_leave_the_session_idle_with_statements_prepared_and_no_limit(postgres_url):
    collector = database.build(None, Target(name="pg", url=postgres_url, application_name=APP_NAME))
    try:
        for _ in range(3):
            result = collect(collector)
            assert result.success, result.reason
        assert value(result, "db_up", database="pg") == 1.0
        assert session_of(postgres_url, APP_NAME) == [("idle", None)]  # not "idle in transaction"
        with collector.bounded.connect(Deadline.after(10), cap=5) as q:
            (prepared,), (timeout, lock_timeout) = (
                q.tuples("SELECT count(*) FROM pg_prepared_statements")[0],
                q.tuples("SELECT current_setting('statement_timeout'), "
                         "current_setting('lock_timeout')")[0],
            )  # fmt: skip
            in_session = q.conn.connection.dbapi_connection.execute(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
            ).fetchone()
    finally:
        collector.close()
    assert prepared >= 3  # the activity, database and table statements
    assert (timeout, lock_timeout) == ("5s", "5s")  # inside the round trip: the limits hold
    assert in_session == ("0", "0")  # outside it: nothing left set on the session


def test_a_slow_prepared_statement_is_cut_by_the_limit(own_engine):
    with own_engine.connect(Deadline.after(30), cap=0.5) as q:
        started = time.monotonic()
        with pytest.raises(sqlalchemy.exc.DBAPIError) as info:
            q.batch(("SELECT 1", "SELECT pg_sleep(5)"))
        took = time.monotonic() - started
        assert q.tuples("SELECT 2") == [(2,)]  # the connection survived the cancel
    assert classify(info.value) == "timeout"
    assert took < 0.5 + 2, took


def test_a_session_without_the_prepared_statements_is_read_all_the_same(postgres_url):
    """What a pooler in transaction mode does: the next round trip reaches a server session
    that never saw the statements the exporter prepared."""
    collector = database.build(None, Target(name="pg", url=postgres_url, application_name=APP_NAME))
    count = "SELECT count(*) FROM pg_prepared_statements"
    try:
        assert collect(collector).success
        with collector.bounded.connect(Deadline.after(10), cap=5) as q:
            assert q.tuples(count)[0][0] >= 3
            q.conn.connection.dbapi_connection.pgconn.exec_(b"DEALLOCATE ALL")  # behind our back
        for _ in range(2):
            result = collect(collector)
            assert result.success, result.reason
            assert value(result, "db_up", database="pg") == 1.0
        with collector.bounded.connect(Deadline.after(10), cap=5) as q:
            assert q.tuples(count) == [(0,)]  # this connection prepares no more
    finally:
        collector.close()


def test_an_optional_part_fails_alone_without_a_savepoint(own_engine):
    ctx = ScrapeContext(Deadline.after(10))
    with own_engine.connect(ctx.deadline, cap=5) as q:
        with q.optional("a missing view", ctx):
            q.tuples("SELECT * FROM afx_db_no_such_view")
        assert q.batch(("SELECT 1", "SELECT 2")) == [[(1,)], [(2,)]]
    assert ctx.notes == ["a missing view skipped this scrape (error)"]


def test_execute_and_read_only_get_a_transaction_of_their_own(own_engine, table):
    with own_engine.connect(Deadline.after(30), cap=0.5) as q:
        with pytest.raises(sqlalchemy.exc.DBAPIError) as info:
            q.rows("SELECT pg_sleep(5)")  # the limit lives in execute's own transaction
        assert classify(info.value) == "timeout"
        with pytest.raises(sqlalchemy.exc.DBAPIError), q.read_only():
            q.rows(f"INSERT INTO {table} VALUES (1)")
        with q.read_only():
            assert q.one(f"SELECT count(*) FROM {table}")[0] == 0
        assert q.autocommit
        assert q.one("SHOW transaction_read_only")[0] == "off"
        assert q.tuples("SHOW statement_timeout") == [("500ms",)]
        dbapi = q.conn.connection.dbapi_connection
        assert dbapi.autocommit  # back in autocommit after each
    assert session_of(own_engine.engine.url.render_as_string(False), APP_NAME) == [("idle", None)]


def test_prepared_statements_are_typed_by_what_they_prepare():
    """pg_stat_statements shows a prepared statement as `PREPARE name AS ...`: its executions
    count under the prepared statement's type (an application's, and the exporter's own)."""
    with private_postgres("shared_preload_libraries=pg_stat_statements") as url:
        execute(url, "CREATE EXTENSION pg_stat_statements", "CREATE TABLE afx_db_prep (id int)")
        collector = database.build(None, Target(name="st", url=url))
        try:
            before = collect(collector)
            with engine_for(url) as engine, engine.connect() as conn:
                conn.exec_driver_sql("PREPARE afx_ins (int) AS INSERT INTO afx_db_prep VALUES ($1)")
                for i in range(7):
                    conn.exec_driver_sql(f"EXECUTE afx_ins({i})")
                conn.commit()
            after = collect(collector)
        finally:
            collector.close()
    assert after.success, after.reason
    inserted = value(after, "db_queries_total", type="insert", table="afx_db_prep")
    assert (
        inserted - (value(before, "db_queries_total", type="insert", table="afx_db_prep") or 0) == 7
    )
    # the exporter's own reads of the statistics views are selects, as before they were prepared
    assert value(after, "db_queries_total", type="select", table="pg_stat_database") >= 1
    assert value(after, "db_queries_total", type="other", table="pg_stat_database") is None


def test_each_round_trip_is_one_transaction_event_as_the_server_counts_it(postgres_url):
    """The engine's commit and rollback events (what counts the exporter's own transactions)
    move as pg_stat_database does on a database nobody else uses: a round trip is one
    committed transaction, a failed one a rolled back one, the first PREPAREs included. Two
    lives of the engine, 1 and 5 checkouts, so what a connection's start costs cancels out;
    a backend reports its counts when it exits, at the latest."""

    def life(url: str, checkouts: int) -> tuple[list[int], list[int]]:
        """(server's moves, events) of commits and rollbacks over one engine's life."""
        bounded = create_engine(url, EngineSettings(application_name=APP_NAME, autocommit=True))
        events = {"commit": 0, "rollback": 0}
        for outcome in events:
            sqlalchemy.event.listen(
                bounded.engine, outcome, lambda *_, o=outcome: events.__setitem__(o, events[o] + 1)
            )
        ctx = ScrapeContext(Deadline.after(30))
        before = settled_counts(url)
        for _ in range(checkouts):
            with bounded.connect(ctx.deadline, cap=5) as q:
                q.batch(("SELECT 1", "SELECT 2"))
                with q.optional("a missing view", ctx):
                    q.tuples("SELECT * FROM afx_db_no_such_view")
        bounded.close()
        after = settled_counts(url)
        return [a - b for a, b in zip(after, before, strict=True)], list(events.values())

    with own_database(postgres_url, "afx_ac") as url:
        (server_1, events_1), (server_5, events_5) = life(url, 1), life(url, 5)
    server_moved = [five - one for five, one in zip(server_5, server_1, strict=True)]
    events_moved = [five - one for five, one in zip(events_5, events_1, strict=True)]
    assert server_moved == events_moved == [8, 4]  # ping + batch a checkout; the failed parts


def settled_counts(url: str) -> tuple[int, int]:
    """`transaction_counts` once they have not moved for 1.5 s (exited backends report late)."""
    last, since = transaction_counts(url), time.monotonic()
    deadline = since + 20
    while time.monotonic() - since < 1.5 and time.monotonic() < deadline:
        time.sleep(0.2)
        now = transaction_counts(url)
        if now != last:
            last, since = now, time.monotonic()
    return last
