"""Statements: the classifier (bounded, memoised), and the application's own statements observed
on its engine in embedded mode, on real PostgreSQL, MariaDB and SQLite: exact counts by type
and table, a histogram with buckets, failures, the table budget, and never the exporter's own
statements (its server queries, the SQL task queue on the app's engine)."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy
from sqlalchemy import text

from collectors.base import Deadline, ScrapeContext
from collectors.database import Options, from_engine
from collectors.sql.statements import (
    CACHE_SIZE,
    SCAN_LIMIT,
    classifier_cache,
    classify_statement,
)
from collectors.task_queue import TaskQueueCollector
from tests.dbhelp import collect, engine_for, execute, value
from tests.tq_support import Scrape, target_from, unique

# -- the classifier ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT `id` , `name` FROM `afx_db_t` WHERE `id` = ?", ("select", "afx_db_t")),
        ("select * from public.orders o join items i on true", ("select", "orders")),
        ('INSERT INTO "public"."Users" (a) VALUES ($1)', ("insert", "users")),
        ("INSERT INTO jobs (a) VALUES (%(a)s) RETURNING jobs.id", ("insert", "jobs")),
        ("UPDATE `test` . `afx_db_t` SET `n` = `n` + ? WHERE `id` = ?", ("update", "afx_db_t")),
        ("UPDATE ONLY public.t SET a = 1", ("update", "t")),
        ("DELETE FROM afx_db_t WHERE id = $1", ("delete", "afx_db_t")),
        ("REPLACE INTO `t2` VALUES (...)", ("insert", "t2")),
        ("INSERT IGNORE t3 VALUES (1)", ("insert", "t3")),
        ("INSERT INTO t SELECT * FROM u", ("insert", "t")),
        ("/* app */ SELECT 1", ("select", "other")),
        ("-- who\n/* what */ SELECT a FROM b -- why", ("select", "b")),
        ("BEGIN", ("other", "other")),
        ("SAVEPOINT sa_savepoint_1", ("other", "other")),
        ("WITH x AS (SELECT 1 FROM y) SELECT * FROM x", ("select", "x")),
        (
            "WITH RECURSIVE a(n) AS (SELECT 1 FROM z UNION ALL SELECT n + 1 FROM a), "
            "b AS MATERIALIZED (SELECT 2) UPDATE jobs SET x = 1",
            ("update", "jobs"),
        ),
        (
            "WITH gone AS (DELETE FROM q RETURNING *) INSERT INTO log SELECT * FROM gone",
            ("insert", "log"),
        ),  # fmt: skip
        ("SELECT id FROM jobs WHERE state = 'queued' FOR UPDATE SKIP LOCKED", ("select", "jobs")),
        ("SELECT extract(epoch FROM now()), (SELECT max(id) FROM u) FROM t", ("select", "t")),
        ('SELECT \'from x\', "from" FROM "Mixed Case"', ("select", "mixed case")),
        ("(SELECT a FROM t1) UNION (SELECT a FROM t2)", ("select", "t1")),
        ("SELECT * FROM (SELECT 1 FROM q) s", ("select", "other")),
        ("SHOW GLOBAL STATUS", ("other", "other")),
        ("", ("other", "other")),
        ("/* never closed", ("other", "other")),
    ],
)
def test_classify_statement(sql, expected):
    assert classify_statement(sql) == expected


def test_a_very_long_statement_is_classified_from_its_head_and_cached_by_it():
    values = ", ".join(f"({i}, 'x')" for i in range(200_000))  # about 2.5 MB
    statement = f"INSERT INTO afx_bulk (id, body) VALUES {values}"
    before = classifier_cache()
    assert classify_statement(statement) == ("insert", "afx_bulk")
    assert classify_statement(statement + " ") == ("insert", "afx_bulk")  # same head
    after = classifier_cache()
    assert after.hits == before.hits + 1  # the second one was answered by the memo
    assert after.maxsize == CACHE_SIZE and len(statement) > 100 * SCAN_LIMIT


def test_the_memo_stays_bounded_under_many_distinct_statements():
    for i in range(CACHE_SIZE + 500):
        assert classify_statement(f"SELECT * FROM afx_t{i} WHERE id = {i}")[1] == f"afx_t{i}"
    assert classifier_cache().currsize == CACHE_SIZE


# -- observed on the application's engine -------------------------------------------------------


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def app(request, tmp_path):
    """An application engine on each dialect, a table of its own, and its embedded collector."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
        sqlite3.connect(tmp_path / "app.db").close()
    else:
        url = request.getfixturevalue(
            "postgres_url" if request.param == "postgresql" else "mariadb_url"
        )
    table = unique("stmt")
    execute(url, f"CREATE TABLE {table} (id int, n int)")
    engine = sqlalchemy.create_engine(url, pool_size=3, max_overflow=0)
    collector = from_engine(engine, "app")
    try:
        yield engine, collector, table
    finally:
        collector.close()
        engine.dispose()
        execute(url, f"DROP TABLE {table}")


def counted(result, table: str) -> dict[str, float]:
    """db_queries_total by type for `table`."""
    return {
        s.labels["type"]: s.value
        for f in result.families
        for s in f.samples
        if s.name == "db_queries_total" and s.labels["table"] == table
    }


def run_workload(engine, table: str, inserts: int, selects: int) -> None:
    with engine.begin() as conn:
        for i in range(inserts):
            conn.execute(text(f"INSERT INTO {table} VALUES (:i, 0)"), {"i": i})
        # one executemany of 50 parameter sets: one cursor call, one statement
        conn.execute(text(f"INSERT INTO {table} VALUES (:i, 1)"), [{"i": i} for i in range(50)])
        conn.execute(text(f"UPDATE {table} SET n = n + 1 WHERE id = 1"))
    for _ in range(selects):
        with engine.connect() as conn:
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {table} WHERE n = 1"))


def test_the_apps_statements_are_counted_exactly_by_type_and_table(app):
    engine, collector, table = app
    run_workload(engine, table, inserts=7, selects=11)
    first = collect(collector)
    assert first.success, first.reason
    assert counted(first, table) == {"insert": 8, "select": 11, "update": 1, "delete": 1}
    # the scrape's own statements (ping, limits, server statistics) were not counted
    second = collect(collector)
    assert counted(second, table) == counted(first, table)
    assert value(second, "db_queries_total", type="select", table="pg_stat_activity") is None
    # the histogram's count is the counter, and every statement is in +Inf
    for kind, count in counted(second, table).items():
        labels = {"database": "app", "type": kind, "table": table}
        assert value(second, "db_query_duration_seconds_count", **labels) == count
        assert value(second, "db_query_duration_seconds_bucket", le="+Inf", **labels) == count
    # embedded, the app's own numbers replace the server's statistics: no note about them
    assert not [n for n in second.notes if "statement metrics" in n]


def test_durations_land_in_the_buckets_they_took(postgres_url):
    engine = sqlalchemy.create_engine(postgres_url)
    collector = from_engine(engine, "app")
    try:
        with engine.connect() as conn:
            for _ in range(3):
                conn.execute(text("SELECT pg_sleep(0.3)"))
            conn.execute(text("SELECT 1"))
        result = collect(collector)
        labels = {"database": "app", "type": "select", "table": "other"}
        bucket = {
            s.labels["le"]: s.value
            for f in result.families
            for s in f.samples
            if s.name == "db_query_duration_seconds_bucket" and s.labels["table"] == "other"
        }
        assert list(bucket)[0] == "0.001" and list(bucket)[-2:] == ["10.0", "+Inf"]
        assert bucket["0.25"] <= 1  # the three sleeps took 0.3 s or more each
        assert bucket["+Inf"] == 4
        assert value(result, "db_query_duration_seconds_sum", **labels) >= 0.9
        native = [
            s.native_histogram
            for f in result.families
            for s in f.samples
            if s.name == "db_query_duration_seconds" and s.labels == labels
        ]
        assert native and native[0].count_value == 4  # native buckets for protobuf scrapers
    finally:
        collector.close()
        engine.dispose()


def test_a_failed_statement_is_counted_and_the_app_gets_its_own_error(app):
    engine, collector, table = app
    with engine.connect() as conn:
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            conn.execute(text(f"SELECT no_such_column FROM {table}"))
        conn.rollback()
        conn.execute(text(f"SELECT id FROM {table}")).all()
    result = collect(collector)
    assert counted(result, table) == {"select": 2}
    assert value(result, "db_query_errors_total", type="select", table=table) == 1


def test_tables_past_the_budget_are_counted_under_other(postgres_url):
    tables = [unique(f"budget{i}") for i in range(4)]
    execute(postgres_url, *(f"CREATE TABLE {t} (id int)" for t in tables))
    engine = sqlalchemy.create_engine(postgres_url)
    collector = from_engine(engine, "app", Options(table_limit=2))
    try:
        with engine.connect() as conn:
            for i, table in enumerate(tables):  # first come, first kept
                for _ in range(i + 1):
                    conn.execute(text(f"SELECT * FROM {table}")).all()
        result = collect(collector)
        selects = {
            s.labels["table"]: s.value
            for f in result.families
            for s in f.samples
            if s.name == "db_queries_total" and s.labels["type"] == "select"
        }
        assert selects == {tables[0]: 1, tables[1]: 2, "other": 3 + 4}
        ctx = ScrapeContext(Deadline.after(1))
        collector.observer.families(ctx)  # the two folded tables, beside the server's own
        assert ctx.series_dropped == 2
    finally:
        collector.close()
        engine.dispose()
        execute(postgres_url, *(f"DROP TABLE {t}" for t in tables))


def test_the_sql_task_queue_on_the_apps_engine_is_not_counted(app):
    engine, collector, table = app
    queue = TaskQueueCollector(
        target_from(
            {
                "name": "jobs",
                "kind": "sql",
                "url": engine.url.render_as_string(hide_password=False),
                "query": f"SELECT 'q' AS queue, 'queued' AS status, count(*) AS count FROM {table}",
            }
        ),
        engine=engine,
    )
    got = Scrape(queue)
    assert got.success, got.reason
    assert got.value("background_tasks_queued", backend="jobs", queue="q", priority="none") == 0
    result = collect(collector)
    assert counted(result, table) == {}


def test_off_switches_and_close_remove_the_listener(postgres_url):
    engine = sqlalchemy.create_engine(postgres_url)
    quiet = from_engine(engine, "quiet", Options(track_statements=False))
    explicit = from_engine(engine, "explicit", observe_statements=False)
    observed = from_engine(engine, "app")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert value(collect(observed), "db_queries_total", database="app") == 1
        for off in (quiet, explicit):
            assert value(collect(off), "db_queries_total") is None
        observed.close()
        assert not sqlalchemy.event.contains(
            engine, "after_cursor_execute", observed.observer._after
        )
    finally:
        for c in (quiet, explicit, observed):
            c.close()
        engine.dispose()


def test_the_listener_leaves_the_engine_usable_by_a_plain_application(postgres_url):
    """The same engine with and without the observer returns the same rows."""
    with engine_for(postgres_url) as engine:
        collector = from_engine(engine, "app")
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT generate_series(1, 3)")).all()
            assert [r[0] for r in rows] == [1, 2, 3]
        finally:
            collector.close()


def test_many_distinct_tables_past_the_budget_keep_memory_bounded(tmp_path):
    """5,000 statements on 5,000 different (missing) tables: two keep their own series, the
    rest are counted, failures included, under `other`, and what is remembered stays capped."""
    from collectors.sql import observer as observer_module

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'many.db'}")
    collector = from_engine(engine, "app", Options(table_limit=2))
    try:
        with engine.connect() as conn:
            for i in range(5000):
                with pytest.raises(sqlalchemy.exc.OperationalError):
                    conn.execute(text(f"SELECT * FROM afx_missing_{i}"))
        observed = collector.observer
        assert len(observed._series) <= observer_module._KEY_MEMORY
        ctx = ScrapeContext(Deadline.after(1))
        observed.families(ctx)
        assert ctx.series_dropped == observer_module._FOLDED_MEMORY
        result = collect(collector)
        assert value(result, "db_queries_total", type="select", table="other") == 4998
        assert value(result, "db_query_errors_total", type="select", table="other") == 4998
        assert value(result, "db_query_errors_total", type="select", table="afx_missing_0") == 1
    finally:
        collector.close()
        engine.dispose()
