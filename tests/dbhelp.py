"""Small helpers shared by the database collector tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy

from collectors.base import CollectionResult, Deadline, SourceCollector


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
