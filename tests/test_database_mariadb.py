"""The database collector on MariaDB: the shared server (performance_schema off, tables
`afx_db_*` in `test`) and a private one started with performance_schema on."""

from __future__ import annotations

import os
import time

import httpx
import pytest
import sqlalchemy

from collectors import database
from collectors.base import Deadline
from collectors.database import Target
from collectors.secret import Secret
from exporter.app import create_app
from exporter.config import load_config
from exporter.state import Exporter
from tests.db_servers import private_mariadb
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
from tests.support import scrape_headers, serve_app

APP_NAME = f"afx-db-test-{os.getpid()}"
HEADERS = scrape_headers(3, text=True)


@pytest.fixture(scope="module")
def perf_url():
    with private_mariadb("--performance-schema=ON") as url:
        yield url


def test_shared_server_without_performance_schema(mariadb_url):
    if scalar(mariadb_url, "SELECT @@performance_schema"):
        pytest.skip("the shared MariaDB has performance_schema on; the private one covers it")
    execute(
        mariadb_url,
        "DROP TABLE IF EXISTS afx_db_work",
        "CREATE TABLE afx_db_work (id int PRIMARY KEY AUTO_INCREMENT, body text)",
    )
    collector = database.build(None, Target(name="my", url=mariadb_url))
    try:
        collect(collector)  # the first has no statement counters yet
        before = collect(collector)
        assert before.success, before.reason
        selects = 20
        with engine_for(mariadb_url) as engine, engine.connect() as conn:
            for _ in range(selects):
                conn.execute(sqlalchemy.text("SELECT count(*) FROM afx_db_work"))
            conn.execute(
                sqlalchemy.text("INSERT INTO afx_db_work (body) VALUES (REPEAT('x', 9000))")
            )
            conn.commit()
        after = collect(collector)
        moved = value(after, "db_commands_total", command="select") - value(
            before, "db_commands_total", command="select"
        )
        assert moved >= selects
        assert value(after, "db_server_info", dialect="mariadb") == 1.0
        assert value(after, "db_connections_max", database="my") == float(
            scalar(mariadb_url, "SELECT @@max_connections")
        )
        assert value(after, "db_connections", state="active") >= 1
        assert table_values(after, "db_table_size_bytes")["afx_db_work"] > 0
        assert "afx_db_work" in table_values(after, "db_table_live_rows")
        # no tracking: the families are absent and the landing page says why
        assert not {"db_queries_total", "db_table_rows_inserted_total"} & names(after)
        assert any("performance_schema is disabled" in n for n in after.notes)
    finally:
        collector.close()


def test_performance_schema_counts_rows_and_statements(perf_url):
    execute(perf_url, "CREATE TABLE afx_db_work (id int PRIMARY KEY, n int)")
    collector = database.build(None, Target(name="ps", url=perf_url))
    try:
        collect(collector)  # the first has no statement counters yet (and says so)
        before = collect(collector)
        assert before.success and not before.notes, before.notes
        inserts, updates, selects = 40, 15, 10
        with engine_for(perf_url) as engine, engine.connect() as conn:
            for i in range(inserts):
                conn.execute(sqlalchemy.text("INSERT INTO afx_db_work VALUES (:i, 0)"), {"i": i})
            for i in range(updates):
                conn.execute(
                    sqlalchemy.text("UPDATE afx_db_work SET n = 1 WHERE id = :i"), {"i": i}
                )
            for _ in range(selects):
                conn.execute(sqlalchemy.text("SELECT * FROM afx_db_work"))
            conn.execute(sqlalchemy.text("DELETE FROM afx_db_work WHERE id >= 35"))
            conn.commit()
        after = collect(collector)

        def moved(name, **labels):
            return (value(after, name, **labels) or 0.0) - (value(before, name, **labels) or 0.0)

        assert moved("db_table_rows_inserted_total", table="afx_db_work") >= inserts
        assert moved("db_table_rows_updated_total", table="afx_db_work") >= updates
        assert moved("db_table_rows_deleted_total", table="afx_db_work") >= 5
        assert moved("db_table_rows_read_total", table="afx_db_work") >= selects * inserts
        assert moved("db_queries_total", type="insert", table="afx_db_work") == inserts
        assert moved("db_queries_total", type="update", table="afx_db_work") == updates
        assert moved("db_queries_total", type="select", table="afx_db_work") == selects
        assert moved("db_queries_total", type="delete", table="afx_db_work") == 1
        assert moved("db_query_duration_seconds_count", type="insert", table="afx_db_work") == (
            inserts
        )
        assert moved("db_query_duration_seconds_sum", type="insert", table="afx_db_work") > 0
    finally:
        collector.close()


def test_locked_table_does_not_hold_the_scrape_and_leaves_no_stuck_thread(mariadb_url):
    execute(
        mariadb_url, "DROP TABLE IF EXISTS afx_db_locked", "CREATE TABLE afx_db_locked (id int)"
    )
    config = load_config(
        {
            "databases": [{"name": "my", "url": mariadb_url}],
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
        },
        env={},
    )
    exporter = Exporter(config)
    with engine_for(mariadb_url, poolclass=sqlalchemy.pool.NullPool) as holder:
        lock = holder.connect()
        lock.execute(sqlalchemy.text("LOCK TABLES afx_db_locked WRITE"))
        try:
            with serve_app(create_app(exporter)) as base:
                started = time.monotonic()
                response = httpx.get(f"{base}/metrics", headers=HEADERS, timeout=30)
                elapsed = time.monotonic() - started
            assert response.status_code == 200 and elapsed < 3 + 2
            assert 'db_up{database="my"} 1.0' in response.text
            collector = exporter.loaded.units[-1].collector
            with collector.bounded.connect(Deadline.after(1.0), cap=5.0) as queries:
                started = time.monotonic()
                with pytest.raises(sqlalchemy.exc.OperationalError) as info:
                    queries.rows("SELECT count(*) AS n FROM afx_db_locked")
                assert time.monotonic() - started < 1.0 + 2
                assert collector.classify(info.value) == "timeout"
            running = scalar(
                mariadb_url,
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' "
                "AND INFO LIKE 'SET STATEMENT max_statement_time%afx_db_locked%'",
            )
            assert running == 0
        finally:
            lock.execute(sqlalchemy.text("UNLOCK TABLES"))
            lock.close()
            exporter.loaded.engine.close()


def program_connections(url: str) -> int:
    return int(
        scalar(
            url,
            "SELECT count(*) FROM performance_schema.session_connect_attrs "
            "WHERE ATTR_NAME = 'program_name' AND ATTR_VALUE = :name",
            name=APP_NAME,
        )
    )


def test_500_scrapes_keep_exporter_connections_within_the_pool(perf_url):
    seen: list[int] = []
    scrape_while_sampling(
        "my", perf_url, APP_NAME, lambda: seen.append(program_connections(perf_url))
    )
    assert max(seen) <= 1
    assert seen[-1] == 1


def test_wrong_password_is_auth_and_never_shown(perf_url, caplog):
    password = "Pw-afx-mariadb-9f2c"
    url = perf_url.replace("root@", "afx_db_nobody@")
    collector = database.build(None, Target(name="denied", url=url, password=Secret(password)))
    try:
        result = collect(collector)
    finally:
        collector.close()
    assert not result.success and result.reason == "auth"
    assert value(result, "db_up", database="denied") == 0.0
    assert password not in caplog.text and "collection failed" in caplog.text
