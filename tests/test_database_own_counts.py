"""Server counters without what the exporter itself made the server count.

PostgreSQL: every scrape is a read transaction of the exporter's (and the SQL task queue's
reads are more), which the server counts in pg_stat_database like any other; a database of
the test's own on the shared server, so that nothing else moves its counters. MariaDB: every
scrape sends SELECTs and a ROLLBACK, which Com_* count server-wide; a private server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy

from collectors import database
from collectors.base import SourceCollector
from collectors.database import Target
from collectors.task_queue import TaskQueueCollector
from tests.db_servers import private_mariadb
from tests.dbhelp import collect, engine_for, own_database, transaction_counts, value
from tests.support import wait_until
from tests.tq_support import target_from

#: PostgreSQL reports a backend's counts when it goes idle, at most once a second
FLUSH_SECONDS = 1.2


@pytest.fixture
def private_database(postgres_url) -> Iterator[str]:
    """A database nobody else uses; its URL."""
    with own_database(postgres_url, "afx_own") as url:
        yield url


def libpq_url(url: str) -> str:
    """The URL a plain psycopg connection takes for a SQLAlchemy one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def sql_queue(url: str) -> TaskQueueCollector:
    """A SQL task queue on the same database: its reads are the exporter's own too."""
    query = "SELECT 'default' AS queue, 'queued' AS status, 3 AS count"
    return TaskQueueCollector(target_from({"name": "q", "kind": "sql", "url": url, "query": query}))


def served(collector: SourceCollector) -> tuple[float, float]:
    result = collect(collector)
    assert result.success, result.reason
    commits = value(result, "db_transactions_committed_total", database="pg")
    rollbacks = value(result, "db_transactions_rolled_back_total", database="pg")
    assert commits is not None and rollbacks is not None
    return commits, rollbacks


def settled(collector: SourceCollector) -> tuple[float, float]:
    """What is served once the server has reported the exporter's earlier transactions."""
    assert collect(collector).success
    time.sleep(FLUSH_SECONDS)
    return served(collector)


def test_a_first_reading_serves_no_transaction_counters_and_says_why(private_database):
    collector = database.build(None, Target(name="pg", url=private_database))
    try:
        first = collect(collector)
        second = served(collector)
    finally:
        collector.close()
    assert first.success, first.reason
    assert value(first, "db_transactions_committed_total", database="pg") is None
    assert value(first, "db_blocks_hit_total", database="pg") is not None
    assert "transaction counters start at the next scrape" in first.notes
    assert second == (0.0, 0.0)  # the exporter's own first transactions are not served


def test_the_exporters_own_reads_never_move_the_transaction_counters(private_database):
    collector = database.build(None, Target(name="pg", url=private_database))
    queue = sql_queue(private_database)
    try:
        before = settled(collector)
        server_before = transaction_counts(private_database)
        for _ in range(30):
            served(collector)
            assert collect(queue).success
        queue.close()  # its session ends: the server has its counts
        wait_until(
            lambda: sum(transaction_counts(private_database)) - sum(server_before) >= 60,
            timeout=20,
            what="the server to count the exporter's 60 read transactions",
        )
        after = settled(collector)  # ...and none of them is served as the application's
    finally:
        collector.close()
        queue.close()
    assert after == before


def test_the_applications_transactions_are_served_exactly(private_database):
    collector = database.build(None, Target(name="pg", url=private_database))
    app = psycopg.connect(libpq_url(private_database))  # its session's start is before `before`
    try:
        app.execute("CREATE TABLE afx_work (n int)")
        app.execute("SELECT pg_stat_force_next_flush()")  # counted before `before`
        app.commit()
        before = settled(collector)
        commits, rollbacks = 5, 7
        for _ in range(rollbacks):
            app.execute("SELECT 1")
            app.rollback()
        for _ in range(commits):
            app.execute("INSERT INTO afx_work VALUES (1)")
            app.commit()
        app.close()  # its counts reach the server at the latest when the session ends

        def moved() -> tuple[float, float] | None:
            time.sleep(FLUSH_SECONDS)  # the exporter's own previous read is reported by now
            now = served(collector)
            assert now[0] - before[0] <= commits and now[1] - before[1] <= rollbacks, now
            return now if now == (before[0] + commits, before[1] + rollbacks) else None

        wait_until(moved, timeout=20, what="the application's 5 commits and 7 rollbacks")
    finally:
        app.close()
        collector.close()


#: the served Com_* counters the exporter's own statements move
MARIADB_COMMANDS = ("select", "rollback", "begin", "set_option", "insert", "commit")


@pytest.fixture(scope="module")
def quiet_mariadb() -> Iterator[str]:
    with private_mariadb() as url:
        yield url


def commands(collector: SourceCollector) -> dict[str, float]:
    result = collect(collector)
    assert result.success, result.reason
    return {
        s.labels["command"]: s.value
        for f in result.families
        for s in f.samples
        if s.name == "db_commands_total" and s.labels["command"] in MARIADB_COMMANDS
    }


def global_commands(url: str) -> dict[str, int]:
    names = ", ".join(f"'Com_{c}'" for c in MARIADB_COMMANDS)
    with engine_for(url, poolclass=sqlalchemy.pool.NullPool) as engine, engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})"))
        return {name.removeprefix("Com_"): int(v) for name, v in rows}


def test_mariadb_the_exporters_own_statements_never_move_the_command_counters(quiet_mariadb):
    collector = database.build(None, Target(name="my", url=quiet_mariadb))
    queue = sql_queue(quiet_mariadb)
    try:
        first = collect(collector)
        assert "statement counters start at the next scrape" in first.notes
        server_before = global_commands(quiet_mariadb)  # its own statements come before...
        before = commands(collector)
        for _ in range(20):
            commands(collector)
            assert collect(queue).success
        queue.close()  # a new session of the queue's next time: its set-up is counted too
        assert collect(queue).success
        after = commands(collector)
        server_after = global_commands(quiet_mariadb)  # ...and after the window
    finally:
        collector.close()
        queue.close()
    moved = {c: server_after[c] - server_before[c] for c in server_after}
    assert moved["select"] >= 60 and moved["rollback"] >= 20, moved  # the server counted them
    assert after == before  # ...none of them is served


def test_mariadb_the_applications_statements_are_served_exactly(quiet_mariadb):
    collector = database.build(None, Target(name="my", url=quiet_mariadb))
    with engine_for(quiet_mariadb) as engine, engine.connect() as app:
        app.execute(sqlalchemy.text("CREATE TABLE IF NOT EXISTS afx_own (n int)"))
        app.commit()
        try:
            collect(collector)
            before = commands(collector)
            for _ in range(9):
                app.execute(sqlalchemy.text("SELECT count(*) FROM afx_own"))
            for _ in range(4):
                app.execute(sqlalchemy.text("INSERT INTO afx_own VALUES (1)"))
            app.commit()
            app.execute(sqlalchemy.text("SELECT 1"))
            app.rollback()
            after = commands(collector)
        finally:
            collector.close()
    moved = {c: after[c] - before[c] for c in after}
    assert moved == {
        "select": 10,
        "insert": 4,
        "commit": 1,
        "rollback": 1,
        "begin": 0,
        "set_option": 0,
    }
