"""The SQLAlchemy pool, read from the application's own engine on real PostgreSQL: the spec's
utilisation `(size - available) / size * 100` is 0 when idle and exactly what the test holds
otherwise, overflow counted; every pool class reports only what it keeps."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine

from collectors import database
from collectors.database import Target, from_engine
from collectors.sql.pool import read_pool
from tests.dbhelp import collect, names, value

POOL = ("size", "available", "checked_out", "idle", "overflow")


def pool_values(result, name: str = "app") -> dict[str, float | None]:
    return {f: value(result, f"db_connection_pool_{f}", database=name) for f in POOL}


def utilisation(pool: dict[str, float | None]) -> float:
    """The backend's spec query, on the exporter's numbers."""
    size, available = pool["size"], pool["available"]
    assert size is not None and available is not None
    return (size - available) / size * 100


@pytest.fixture
def app_engine(postgres_url):
    engine = sqlalchemy.create_engine(postgres_url, pool_size=5, max_overflow=5)
    collector = from_engine(engine, "app")
    try:
        yield engine, collector
    finally:
        collector.close()
        engine.dispose()


def test_idle_app_reads_0_percent_whatever_the_pool_holds_open(app_engine):
    engine, collector = app_engine
    with engine.connect() as a, engine.connect() as b:  # the app ran; two connections stay open
        a.execute(sqlalchemy.text("SELECT 1"))
        b.execute(sqlalchemy.text("SELECT 1"))
    pool = pool_values(collect(collector))
    assert pool == {"size": 10, "available": 10, "checked_out": 0, "idle": 2, "overflow": 0}
    assert utilisation(pool) == 0


@pytest.mark.parametrize("held", [1, 3, 5])
def test_connections_the_app_holds_are_exactly_the_utilisation(app_engine, held):
    engine, collector = app_engine
    conns = [engine.connect() for _ in range(held)]
    try:
        for conn in conns:
            conn.execute(sqlalchemy.text("SELECT 1"))
        pool = pool_values(collect(collector))
        assert pool["checked_out"] == held
        assert pool["available"] == 10 - held
        assert utilisation(pool) == held / 10 * 100
        # the collector's own connection was borrowed after the pool was read, and went back
        assert engine.pool.checkedout() == held and pool["idle"] == 0
    finally:
        for conn in conns:
            conn.close()
    after = pool_values(collect(collector))
    assert after["checked_out"] == 0 and utilisation(after) == 0
    assert after["idle"] == engine.pool.checkedin() == min(5, held + 1)


def test_overflow_in_use_is_counted(app_engine):
    engine, collector = app_engine
    conns = [engine.connect() for _ in range(8)]  # 5 from the pool, 3 beyond it
    try:
        pool = pool_values(collect(collector))
        assert pool == {"size": 10, "available": 2, "checked_out": 8, "idle": 0, "overflow": 3}
        assert utilisation(pool) == 80
    finally:
        for conn in conns:
            conn.close()
    # overflow connections are closed as they come back to a full pool
    pool = pool_values(collect(collector))
    assert pool["overflow"] == 0 and pool["idle"] == 5 and utilisation(pool) == 0


def test_exhausted_pool_is_reported_without_waiting_for_a_connection(postgres_url):
    app_engine = sqlalchemy.create_engine(
        postgres_url, pool_size=2, max_overflow=0, pool_timeout=30
    )
    collector = from_engine(app_engine, "app")
    held = [app_engine.connect() for _ in range(2)]
    try:
        started = time.monotonic()
        result = collect(collector, seconds=20)
        assert time.monotonic() - started < 10  # far below pool_timeout: it did not queue
        assert result.success
        pool = pool_values(result)
        assert pool["checked_out"] == 2 and pool["available"] == 0 and utilisation(pool) == 100
        assert any("pool exhausted" in n for n in result.notes)
        assert value(result, "db_up") is None
    finally:
        for conn in held:
            conn.close()
        collector.close()
        app_engine.dispose()
    assert not collector.owns_engine


def test_async_engine_pool_through_its_sync_engine(postgres_url):
    """AsyncAdaptedQueuePool (an AsyncEngine's pool) is a QueuePool: the same numbers."""
    engine = create_async_engine(postgres_url, pool_size=3, max_overflow=2)

    async def hold_two() -> tuple:
        async with engine.connect() as a, engine.connect() as b:
            await a.execute(sqlalchemy.text("SELECT 1"))
            await b.execute(sqlalchemy.text("SELECT 1"))
            during = read_pool(engine.sync_engine.pool)
        after = read_pool(engine.sync_engine.pool)
        await engine.dispose()
        return during, after

    during, after = asyncio.run(hold_two())
    assert type(engine.sync_engine.pool).__name__ == "AsyncAdaptedQueuePool"
    assert (during.capacity, during.checked_out, during.available) == (5, 2, 3)
    assert (after.checked_out, after.available, after.idle) == (0, 5, 2)


@pytest.mark.parametrize(
    "poolclass",
    [sqlalchemy.pool.NullPool, sqlalchemy.pool.StaticPool, sqlalchemy.pool.SingletonThreadPool],
)
def test_pools_without_counters_serve_no_pool_family(tmp_path, poolclass):
    """These pools keep no counts (SQLAlchemy's status() is only their name): nothing is made
    up for them, and the server part is still read."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'n.db'}", poolclass=poolclass)
    collector = from_engine(engine, "plain")
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        result = collect(collector)
        assert result.success and value(result, "db_up", database="plain") == 1.0
        assert not {n for n in names(result) if n.startswith("db_connection_pool_")}
    finally:
        collector.close()
        engine.dispose()


def test_standalone_sqlite_target_reads_its_own_pool_of_one_as_free(tmp_path):
    """QA saw available 0 with size 1 and nothing checked out: the idle count was served."""
    path = tmp_path / "lite.db"
    sqlite3.connect(path).close()
    collector = database.build(None, Target(name="lite", url=f"sqlite:///{path}"))
    try:
        first = pool_values(collect(collector), "lite")  # before the first connection opened
        second = pool_values(collect(collector), "lite")  # one idle connection now
    finally:
        collector.close()
    assert first == {"size": 1, "available": 1, "checked_out": 0, "idle": 0, "overflow": 0}
    assert second == {"size": 1, "available": 1, "checked_out": 0, "idle": 1, "overflow": 0}
