"""The database collector on PostgreSQL: the shared server (tables `afx_db_*` in `test`) and a
private one started with pg_stat_statements preloaded."""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest
import sqlalchemy

from collectors import database
from collectors.base import Deadline
from collectors.database import Options, Target
from exporter.app import create_app
from exporter.config import load_config
from exporter.state import Exporter
from tests.db_servers import private_postgres
from tests.dbhelp import (
    collect,
    engine_for,
    execute,
    names,
    scalar,
    scrape_while_sampling,
    table_values,
    value,
)
from tests.support import scrape_headers, serve_app, wait_until

APP_NAME = f"afx-db-test-{os.getpid()}"
HEADERS = scrape_headers(3, text=True)


@pytest.fixture
def pg_collector(postgres_url):
    collector = database.build(None, Target(name="pg", url=postgres_url, application_name=APP_NAME))
    yield collector
    collector.close()


@pytest.fixture(scope="module")
def statements_url():
    with private_postgres("shared_preload_libraries=pg_stat_statements") as url:
        execute(url, "CREATE EXTENSION pg_stat_statements")
        yield url


def exporter_backends(url: str, app_name: str = APP_NAME) -> list[tuple]:
    """(state, wait_event_type, pid) of every session the exporter under test has open."""
    with engine_for(url, poolclass=sqlalchemy.pool.NullPool) as engine, engine.connect() as conn:
        rows = conn.execute(
            sqlalchemy.text(
                "SELECT state, wait_event_type, pid FROM pg_stat_activity "
                "WHERE application_name = :a"
            ),
            {"a": app_name},
        )
        return [tuple(r) for r in rows]


def test_known_workload_moves_per_table_counters(postgres_url, pg_collector):
    execute(
        postgres_url,
        "DROP TABLE IF EXISTS afx_db_work",
        "CREATE TABLE afx_db_work (id serial PRIMARY KEY, n int)",
    )
    collect(pg_collector)  # the first has no transaction counters yet
    before = collect(pg_collector)
    assert before.success, before.reason
    inserted, updated, deleted = 60, 25, 10
    execute(
        postgres_url,
        f"INSERT INTO afx_db_work (n) SELECT g FROM generate_series(1, {inserted}) g",
        f"UPDATE afx_db_work SET n = n + 1 WHERE id <= {updated}",
        f"DELETE FROM afx_db_work WHERE id > {inserted - deleted}",
        "SELECT count(*) FROM afx_db_work",
    )
    with engine_for(postgres_url, isolation_level="AUTOCOMMIT") as engine:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("VACUUM ANALYZE afx_db_work"))

    def moved():
        after = collect(pg_collector)
        ins = table_values(after, "db_table_rows_inserted_total").get("afx_db_work", 0)
        return after if ins >= inserted else None

    after = wait_until(moved, timeout=20, what="pg stats to show the workload")
    for name, least in (
        ("db_table_rows_inserted_total", inserted),
        ("db_table_rows_updated_total", updated),
        ("db_table_rows_deleted_total", deleted),
        ("db_table_rows_read_total", inserted),
        ("db_table_seq_scans_total", 1),
    ):
        old = table_values(before, name).get("afx_db_work", 0.0)
        assert table_values(after, name)["afx_db_work"] - old >= least, name
    assert table_values(after, "db_table_size_bytes")["afx_db_work"] > 0
    assert 0 <= table_values(after, "db_table_last_vacuum_age_seconds")["afx_db_work"] < 600
    assert 0 <= table_values(after, "db_table_last_analyze_age_seconds")["afx_db_work"] < 600
    assert (
        value(after, "db_transactions_committed_total", database="pg")
        >= value(before, "db_transactions_committed_total", database="pg") + 1
    )
    assert value(after, "db_connections_max", database="pg") == float(
        scalar(postgres_url, "SELECT current_setting('max_connections')::int")
    )
    assert value(after, "db_size_bytes", database="pg") > 0
    assert value(after, "db_server_info", dialect="postgresql") == 1.0


def test_statement_families_absent_without_pg_stat_statements(pg_collector):
    result = collect(pg_collector)
    assert result.success
    assert not {"db_queries_total", "db_query_duration_seconds_count"} & names(result)
    assert any("pg_stat_statements" in n for n in result.notes)


def test_pg_stat_statements_counts_the_workload_by_type_and_table(statements_url):
    execute(statements_url, "CREATE TABLE afx_db_stmt (id int, n int)")
    collector = database.build(None, Target(name="st", url=statements_url))
    try:
        collect(collector)  # the first has no transaction counters yet (and says so)
        before = collect(collector)
        assert before.success and not before.notes
        inserts, selects = 30, 12
        with engine_for(statements_url) as engine, engine.connect() as conn:
            for i in range(inserts):
                conn.execute(sqlalchemy.text("INSERT INTO afx_db_stmt VALUES (:i, 0)"), {"i": i})
            for i in range(selects):
                conn.execute(sqlalchemy.text("SELECT n FROM afx_db_stmt WHERE id = :i"), {"i": i})
            conn.execute(sqlalchemy.text("UPDATE afx_db_stmt SET n = 1 WHERE id < 5"))
            conn.commit()
        after = collect(collector)

        def moved(name, kind, table):
            old = value(before, name, type=kind, table=table) or 0.0
            return value(after, name, type=kind, table=table) - old

        assert moved("db_queries_total", "insert", "afx_db_stmt") == inserts
        assert moved("db_queries_total", "select", "afx_db_stmt") == selects
        assert moved("db_queries_total", "update", "afx_db_stmt") == 1
        assert moved("db_query_duration_seconds_count", "insert", "afx_db_stmt") == inserts
        assert moved("db_query_duration_seconds_sum", "insert", "afx_db_stmt") > 0
    finally:
        collector.close()


def test_statement_table_budget_folds_into_other(statements_url):
    tables = [f"afx_db_b{i}" for i in range(4)]
    execute(statements_url, *(f"CREATE TABLE {t} (id int)" for t in tables))
    for i, table in enumerate(tables):
        for _ in range(i + 1):
            execute(statements_url, f"SELECT * FROM {table}")
    collector = database.build(Options(table_limit=2), Target(name="b", url=statements_url))
    try:
        result = collect(collector)
        counted = table_values(result, "db_queries_total")
        assert (
            len(
                {
                    s.labels["table"]
                    for f in result.families
                    for s in f.samples
                    if s.name == "db_queries_total"
                }
            )
            <= 3
        )
        assert "other" in counted and "afx_db_b0" not in counted
        assert result.series_dropped > 0
        tracked = float(
            scalar(
                statements_url,
                "SELECT sum(calls) FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())",
            )
        )
        total = sum(
            s.value for f in result.families for s in f.samples if s.name == "db_queries_total"
        )
        assert total <= tracked  # never more than the server counted
    finally:
        collector.close()


def test_locked_table_does_not_hold_the_scrape_and_leaves_no_stuck_backend(postgres_url):
    execute(
        postgres_url,
        "DROP TABLE IF EXISTS afx_db_locked",
        "CREATE TABLE afx_db_locked (id int)",
        "INSERT INTO afx_db_locked VALUES (1)",
    )
    config = load_config(
        {
            "databases": [{"name": "pg", "url": postgres_url, "application_name": APP_NAME}],
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
        },
        env={},
    )
    exporter = Exporter(config)
    holder = sqlalchemy.create_engine(postgres_url, poolclass=sqlalchemy.pool.NullPool)
    lock = holder.connect()
    lock.execute(sqlalchemy.text("LOCK TABLE afx_db_locked IN ACCESS EXCLUSIVE MODE"))
    waiter_done = threading.Event()

    def blocked_application_query():
        with holder.connect() as conn:
            try:
                conn.execute(sqlalchemy.text("SET statement_timeout = '60s'"))
                conn.execute(sqlalchemy.text("SELECT count(*) FROM afx_db_locked"))
            finally:
                waiter_done.set()

    waiter = threading.Thread(target=blocked_application_query)
    try:
        waiter.start()
        with serve_app(create_app(exporter)) as base:
            wait_until(
                lambda: (
                    'db_lock_waiting_connections{database="pg"} 1.0'
                    in httpx.get(f"{base}/metrics", headers=HEADERS, timeout=30).text
                ),
                timeout=20,
                what="the blocked query to show as waiting",
            )
            started = time.monotonic()
            response = httpx.get(f"{base}/metrics", headers=HEADERS, timeout=30)
            elapsed = time.monotonic() - started
        assert response.status_code == 200 and elapsed < 3 + 2
        assert 'db_up{database="pg"} 1.0' in response.text
        assert 'table="afx_db_locked"' in response.text  # its counters are lock-free
        assert 'db_table_size_bytes{database="pg",table="afx_db_locked"}' not in response.text

        # A statement of ours that does wait on the lock is cancelled by the server in time.
        collector = exporter.loaded.units[-1].collector
        with collector.bounded.connect(Deadline.after(1.0), cap=5.0) as queries:
            started = time.monotonic()
            with pytest.raises(sqlalchemy.exc.OperationalError) as info:
                queries.rows("SELECT pg_total_relation_size('afx_db_locked')")
            assert time.monotonic() - started < 1.0 + 2
            assert collector.classify(info.value) == "timeout"
        stuck = [b[:2] for b in exporter_backends(postgres_url) if b[0] != "idle"]
        assert stuck == []
    finally:
        lock.rollback()
        lock.close()
        waiter.join(timeout=30)
        holder.dispose()
        exporter.loaded.engine.close()
    assert waiter_done.is_set()


def test_500_scrapes_keep_exporter_connections_within_the_pool(postgres_url):
    seen: list[int] = []
    pids: set[int] = set()

    def sample() -> None:
        backends = exporter_backends(postgres_url)
        seen.append(len(backends))
        pids.update(b[2] for b in backends)

    scrape_while_sampling("pg", postgres_url, APP_NAME, sample)
    assert max(seen) <= 1  # pool_size 1, max_overflow 0
    assert seen[-1] == 1  # the long-lived connection is kept between scrapes
    assert len(pids) == 1  # ... and it is the same one all along: no reconnects
    wait_until(
        lambda: not exporter_backends(postgres_url),
        timeout=10,
        what="close() to release the connection",
    )


def test_default_application_name_identifies_the_exporter(postgres_url):
    collector = database.build(None, Target(name="pg", url=postgres_url))
    try:
        with collector.engine.connect() as conn:
            name = conn.execute(sqlalchemy.text("SHOW application_name")).scalar()
        assert name == "afirgen-exporter"
    finally:
        collector.close()


def test_embedded_collection_leaves_the_application_connection_as_it_was(postgres_url):
    app_engine = sqlalchemy.create_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        result = collect(database.from_engine(app_engine, "app"))
        assert result.success
        with app_engine.connect() as conn:  # the very connection the collector used
            assert conn.execute(sqlalchemy.text("SHOW statement_timeout")).scalar() == "0"
            assert conn.execute(sqlalchemy.text("SHOW lock_timeout")).scalar() == "0"
        assert app_engine.pool.checkedout() == 0
    finally:
        app_engine.dispose()
