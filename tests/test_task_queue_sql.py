"""The SQL task queue on PostgreSQL, MariaDB and SQLite alike: counts by status, a slow query
cut by the database's own time limit within the scrape deadline, and a limit that never stays
on the pooled connection.

PostgreSQL and MariaDB are the machine's shared servers (a table named for this run in db
`test`, dropped afterwards); SQLite is a file in the test's temp dir.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

from collectors.task_queue import TaskQueueCollector
from tests.support import require_service, wait_until
from tests.tq_support import Scrape, WedgingProxy, scrape, target_from, unique

TABLE = unique("sql_tasks")
#: (queue, priority, status, kind, age in seconds) -> the rows the test inserts
ROWS = (
    [("mail", 1, "queued", "send", 300)] * 3
    + [("mail", 5, "queued", "send", 10)] * 2
    + [("mail", 1, "running", "send", 5)]
    + [("ocr", 1, "done", "scan", 400)] * 4
    + [("ocr", 1, "failed", "scan", 400)] * 2
)
#: The scrape deadline of the slow-query tests: the database's limit is what is left of it.
DEADLINE_SECONDS = 1.0


@dataclass
class Database:
    name: str
    url: str
    #: SQL for "now minus `age` seconds", with a bound parameter :age
    ago: str
    #: the age of the oldest row of a group, in seconds
    age: str
    #: a WHERE condition that keeps a query busy for about 5 s (minutes for SQLite)
    slow: str
    #: what identifies the server-side connection (to prove the pool hands out the same one)
    connection_id: Callable[[Connection], object]
    #: run a statement that takes about `seconds` on `connection`
    busy: Callable[[Connection, float], None]

    def query(self, where: str = "1 = 1") -> str:
        return (
            f"SELECT queue, priority, status, count(*) AS count, kind AS type, "
            f"{self.age} AS age_seconds FROM {TABLE} WHERE {where} "
            f"GROUP BY queue, priority, status, kind"
        )


def _scalar(statement: str) -> Callable[[Connection], object]:
    return lambda connection: connection.execute(text(statement)).scalar()


def _sqlite_busy(connection: Connection, seconds: float) -> None:
    """A recursive count sized to take about `seconds` (SQLite has no sleep of its own)."""
    statement = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) "
        "SELECT count(*) FROM n"
    )
    started = time.perf_counter()
    connection.execute(statement, {"n": 200_000}).scalar()
    per_row = (time.perf_counter() - started) / 200_000
    connection.execute(statement, {"n": int(seconds / per_row)}).scalar()


SLOW_SQLITE = (
    "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000000) "
    "SELECT count(*) FROM n) > 0"
)


def postgresql() -> Database:
    require_service("PostgreSQL", 5432)
    return Database(
        "postgresql",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        ago="now() - make_interval(secs => :age)",
        age="extract(epoch FROM now() - min(created_at))",
        slow="pg_sleep(5) IS NOT NULL",
        connection_id=_scalar("SELECT pg_backend_pid()"),
        busy=lambda c, s: c.execute(text("SELECT pg_sleep(:s)"), {"s": s}).scalar(),
    )


def mariadb() -> Database:
    require_service("MariaDB", 3306)
    return Database(
        "mariadb",
        "mysql+pymysql://root@127.0.0.1:3306/test",
        ago="now() - INTERVAL :age SECOND",
        age="timestampdiff(SECOND, min(created_at), now())",
        slow="SLEEP(5) = 0",
        connection_id=_scalar("SELECT CONNECTION_ID()"),
        busy=lambda c, s: c.execute(text("SELECT SLEEP(:s)"), {"s": s}).scalar(),
    )


def sqlite(directory) -> Database:
    return Database(
        "sqlite",
        f"sqlite:///{directory}/tasks.db",
        ago="datetime('now', '-' || :age || ' seconds')",
        age="strftime('%s', 'now') - strftime('%s', min(created_at))",
        slow=SLOW_SQLITE,
        connection_id=lambda c: id(c.connection.driver_connection),
        busy=_sqlite_busy,
    )


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def database(request, tmp_path) -> Iterator[tuple[Database, Engine]]:
    """The table filled with ROWS, and an application engine with a pool of one connection."""
    db = sqlite(tmp_path) if request.param == "sqlite" else globals()[request.param]()
    engine = create_engine(db.url, pool_size=1, max_overflow=0)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {TABLE} (queue varchar(20), priority int, status varchar(20), "
                "kind varchar(20), created_at timestamp)"
            )
        )
        for queue, priority, status, kind, age in ROWS:
            conn.execute(
                text(f"INSERT INTO {TABLE} VALUES (:q, :p, :s, :k, {db.ago})"),
                {"q": queue, "p": priority, "s": status, "k": kind, "age": age},
            )
    try:
        yield db, engine
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {TABLE}"))
        engine.dispose()


def collector_for(db: Database, query: str, engine: Engine | None = None) -> TaskQueueCollector:
    target = target_from({"name": "t", "kind": "sql", "url": db.url, "query": query})
    return TaskQueueCollector(target, engine=engine)


def test_counts_by_status_on_every_dialect(database):
    db, _ = database
    collector = collector_for(db, db.query())
    try:
        got = scrape(collector)
    finally:
        collector.close()
    assert got.success, got.reason
    assert got.value("background_tasks_up", backend="t", kind="sql") == 1
    assert got.value("background_tasks_queued", backend="t", queue="mail", priority="1") == 3
    assert got.value("background_tasks_queued", backend="t", queue="mail", priority="5") == 2
    assert got.value("background_tasks_in_progress", backend="t", queue="mail") == 1
    assert got.value("background_tasks_in_progress", backend="t", queue="ocr") == 0
    done = got.value("background_tasks_processed_total", backend="t", type="scan", status="done")
    failed = got.value(
        "background_tasks_processed_total", backend="t", type="scan", status="failed"
    )
    assert (done, failed) == (4, 2)
    age = got.value("background_tasks_oldest_waiting_age_seconds", backend="t", queue="mail")
    assert 300 <= age < 360


def test_a_slow_query_is_cut_by_the_database_and_the_limit_stays_off_the_pool(database):
    db, engine = database
    collector = collector_for(db, db.query(db.slow), engine=engine)  # embedded: the app's pool
    kept = []
    # the database's cut has CLIENT_GRACE_SECONDS before the client cuts the connection: on a
    # loaded machine its kill can come later, and then the client's cut (the fallback, which
    # replaces the connection) is right too. The database must cut it at least once in three.
    for _ in range(3):
        with engine.connect() as connection:
            pooled = db.connection_id(connection)
        started = time.monotonic()
        got = Scrape(collector, seconds=DEADLINE_SECONDS)
        took = time.monotonic() - started
        assert not got.success
        assert got.reason == "timeout"
        assert got.value("background_tasks_up", backend="t", kind="sql") == 0
        assert took < DEADLINE_SECONDS + 1.5  # the query alone would take 5 s or more
        fast = Scrape(collector_for(db, db.query(), engine=engine), seconds=DEADLINE_SECONDS)
        assert fast.success, fast.reason
        with engine.connect() as connection:
            kept.append(db.connection_id(connection) == pooled)
        if kept[-1]:
            break
    # the same pooled connection, and a statement longer than the limit runs to its end
    assert kept[-1], "the client cut the slow query every time: the database's limit never did"
    with engine.connect() as connection:
        started = time.monotonic()
        db.busy(connection, DEADLINE_SECONDS * 1.5)
        assert time.monotonic() - started > DEADLINE_SECONDS
        if db.name == "postgresql":
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "0"
        if db.name == "mariadb":
            assert connection.execute(text("SELECT @@max_statement_time")).scalar() == 0


def test_a_query_without_the_needed_columns_reads_down(database):
    db, _ = database
    collector = collector_for(db, f"SELECT queue FROM {TABLE}")
    try:
        got = scrape(collector)
    finally:
        collector.close()
    assert not got.success
    assert got.value("background_tasks_up", backend="t", kind="sql") == 0


def test_an_abandoned_run_on_a_wedged_connection_does_not_hold_up_the_next(postgres_url):
    """PostgreSQL over a connection the network silently dropped: the stuck run would wait for
    TCP keepalive (hours). Once the engine abandons it, the next run dials afresh and answers,
    and the stuck one's engine is closed when it finally ends."""
    db = postgresql()
    engine = create_engine(db.url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {TABLE} (queue text, status text)"))
        conn.execute(text(f"INSERT INTO {TABLE} VALUES ('mail', 'queued'), ('mail', 'queued')"))
    app_name = unique("wedged")
    query = f"SELECT queue, status, count(*) AS count FROM {TABLE} GROUP BY queue, status"
    try:
        with WedgingProxy(5432) as proxy:
            url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test"
            collector = TaskQueueCollector(
                target_from(
                    {
                        "name": "t",
                        "kind": "sql",
                        "url": f"{url}?application_name={app_name}",
                        "query": query,
                    }  # fmt: skip
                )
            )
            assert scrape(collector).success
            proxy.wedge()
            stuck: list = []
            thread = threading.Thread(target=lambda: stuck.append(scrape(collector)))
            thread.start()
            wait_until(lambda: proxy.swallowed > 0, timeout=10, what="the stuck run's request")
            collector.abandon()  # what the scrape engine does once a run overran its deadline
            fresh = Scrape(collector, seconds=5)
            assert fresh.success, fresh.reason
            assert fresh.value("background_tasks_queued", backend="t", queue="mail",
                               priority="none") == 2  # fmt: skip
            assert thread.is_alive()  # still waiting on the dead connection
            proxy.close()  # the network gives up on the dead connection at last
            thread.join(timeout=10)
            assert not thread.is_alive() and not stuck[0].success
            collector.close()

        def our_backends() -> int:
            statement = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n")
            with engine.connect() as conn:
                return int(conn.execute(statement, {"n": app_name}).scalar())

        wait_until(lambda: our_backends() == 0, timeout=10, what="every connection closed")
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {TABLE}"))
        engine.dispose()
