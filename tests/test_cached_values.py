"""Values a collector reads on an interval of its own (collectors.base.SlowValues): PostgreSQL's
sizes and settings through a loopback proxy to the shared server that can drop the network.

The cached values are served with their age (`afirgen_exporter_cached_age_seconds`), are not
read again within their interval, and are never served once the source is down: the next
successful scrape reads them afresh.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families

from collectors import database
from collectors.base import Deadline, SlowValues
from collectors.database import Target
from collectors.sql import postgresql
from exporter.exposition import Format
from exporter.scrape import ScrapeEngine, Unit
from tests.dbhelp import Blackhole, collect, execute, table_values, value
from tests.support import wait_until

APP_NAME = f"afx-cache-{os.getpid()}"
TABLE = f"afx_cache_{os.getpid()}"


@pytest.fixture
def proxied(postgres_url):
    port = sqlalchemy.engine.make_url(postgres_url).port
    proxy = Blackhole(("127.0.0.1", port))
    execute(postgres_url, f"DROP TABLE IF EXISTS {TABLE}")
    yield proxy, proxy.url(postgres_url)
    proxy.close()
    execute(postgres_url, f"DROP TABLE IF EXISTS {TABLE}")


def ages(body: bytes) -> dict[str, float]:
    """part -> age of the `afirgen_exporter_cached_age_seconds` samples of a text body."""
    return {
        sample.labels["part"]: sample.value
        for family in text_string_to_metric_families(body.decode())
        if family.name == "afirgen_exporter_cached_age_seconds"
        for sample in family.samples
    }


def test_sizes_are_cached_with_their_age_and_dropped_while_the_database_is_down(
    proxied, postgres_url
):
    proxy, url = proxied
    collector = database.build(None, Target(name="pg", url=url, application_name=APP_NAME))
    engine = ScrapeEngine([Unit("database", "pg", collector)])
    try:

        async def scrape(seconds: float) -> bytes:
            return await engine.render(engine.units, Deadline.after(seconds), Format.TEXT, False)

        first = collect(collector)
        assert first.success and dict(first.ages) == {"settings": 0.0, "sizes": 0.0}
        assert value(first, "db_size_bytes", database="pg") > 0
        execute(postgres_url, f"CREATE TABLE {TABLE} (id int PRIMARY KEY)")
        time.sleep(0.05)
        second = collect(collector)
        assert second.success
        # the new table is counted at once, its size waits for the next refresh
        assert TABLE in table_values(second, "db_table_live_rows")
        assert TABLE not in table_values(second, "db_table_size_bytes")
        assert dict(second.ages)["sizes"] >= 0.05
        assert value(second, "db_size_bytes", database="pg") == value(
            first, "db_size_bytes", database="pg"
        )
        body = asyncio.run(scrape(5))
        served = ages(body)
        assert set(served) == {"settings", "sizes"} and served["sizes"] > 0

        proxy.drop()
        down = asyncio.run(scrape(1.0))
        assert b'db_up{database="pg"} 0.0' in down
        assert b"db_size_bytes" not in down and not ages(down)  # nothing cached is served
        proxy.restore()

        def recovered() -> bytes | None:
            body = asyncio.run(scrape(3))
            return body if b'db_up{database="pg"} 1.0' in body else None

        back = wait_until(recovered, timeout=20, what="the database to answer again")
        # read afresh after the outage: the table's size is there, and the age starts over
        assert ages(back)["sizes"] == 0.0 < postgresql.SIZES_SECONDS
        assert f'table="{TABLE}"'.encode() in b"".join(
            line for line in back.splitlines() if line.startswith(b"db_table_size_bytes")
        )
    finally:
        engine.close()


def test_slow_values_are_read_again_after_their_interval_a_new_key_or_a_skipped_read():
    store = SlowValues()
    reads: list[str] = []

    def read(value: str | None) -> Callable[[], str | None]:
        def reader() -> str | None:
            reads.append(str(value))
            return value

        return reader

    assert store.get("settings", 60, read("v1"), key=1) == ("v1", 0.0)
    value, age = store.get("settings", 60, read("v2"), key=1)
    assert value == "v1" and age > 0 and reads == ["v1"]  # within its interval: not read
    assert store.get("settings", 60, read("v3"), key=2)[0] == "v3"  # restarted: read at once
    assert store.get("settings", 0, read("v4"), key=2)[0] == "v4"  # interval over
    assert store.get("sizes", 60, read(None)) == (None, 0.0)  # skipped: nothing kept
    assert store.get("sizes", 60, read("s1"))[0] == "s1"
    store.clear()
    assert store.get("sizes", 60, read("s2"))[0] == "s2"
    assert reads == ["v1", "v3", "v4", "None", "s1", "s2"]
