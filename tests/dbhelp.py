"""Small helpers shared by the database collector tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import sqlalchemy

from collectors.base import CollectionResult, Deadline, SourceCollector
from exporter.app import create_app
from exporter.config import load_config
from exporter.state import Exporter
from tests.support import serve_app


def collect(collector: SourceCollector, seconds: float = 10.0) -> CollectionResult:
    return collector.run(Deadline.after(seconds))


def value(result: CollectionResult, name: str, **labels: str) -> float | None:
    """The sample `name` whose labels include `labels`, or None."""
    for family in result.families:
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def names(result: CollectionResult) -> set[str]:
    return {sample.name for family in result.families for sample in family.samples}


def table_values(result: CollectionResult, name: str) -> dict[str, float]:
    return {
        s.labels["table"]: float(s.value)
        for f in result.families
        for s in f.samples
        if s.name == name
    }


@contextlib.contextmanager
def engine_for(url: str, **kwargs) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(url, **kwargs)
    try:
        yield engine
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    with engine_for(url, poolclass=sqlalchemy.pool.NullPool) as engine, engine.begin() as conn:
        for statement in statements:
            conn.execute(sqlalchemy.text(statement))


def scalar(url: str, statement: str, **params) -> object:
    with engine_for(url, poolclass=sqlalchemy.pool.NullPool) as engine, engine.connect() as conn:
        return conn.execute(sqlalchemy.text(statement), params).scalar()


SCRAPE_HEADERS = {"Accept": "text/plain;version=0.0.4", "X-Prometheus-Scrape-Timeout-Seconds": "3"}


def scrape_while_sampling(
    name: str,
    url: str,
    application_name: str,
    sample: Callable[[], None],
    scrapes: int = 500,
    clients: int = 4,
) -> None:
    """Serve one database target over real HTTP and scrape it `scrapes` times from `clients`
    threads, calling `sample()` every 50 ms while they run and once after they finish."""
    config = load_config(
        {
            "databases": [{"name": name, "url": url, "application_name": application_name}],
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
        },
        env={},
    )
    exporter = Exporter(config)
    try:
        with serve_app(create_app(exporter)) as base, httpx.Client(timeout=30) as client:

            def scrape_many(count: int) -> None:
                for _ in range(count):
                    response = client.get(f"{base}/metrics", headers=SCRAPE_HEADERS)
                    assert response.status_code == 200

            threads = [
                threading.Thread(target=scrape_many, args=(scrapes // clients,))
                for _ in range(clients)
            ]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                sample()
                time.sleep(0.05)
            for t in threads:
                t.join()
            sample()
    finally:
        exporter.loaded.engine.close()
