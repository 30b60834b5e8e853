"""SQLAlchemy's connection pool, read from the pool object itself: no I/O, no checkout."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from sqlalchemy.pool import Pool, QueuePool

from collectors.specs import MetricSpec, gauge

_LABELS = ("database",)
_SOURCE = "engine.pool"

# fmt: off
POOL_SIZE = gauge("db_connection_pool_size", "Connections the pool may hold: size + max overflow. (SQLAlchemy pool)", _LABELS, source=f"{_SOURCE}.size() + max_overflow")  # noqa: E501
POOL_AVAILABLE = gauge("db_connection_pool_available", "Idle connections ready in the pool. (SQLAlchemy pool)", _LABELS, source=f"{_SOURCE}.checkedin()")  # noqa: E501
POOL_CHECKED_OUT = gauge("db_connection_pool_checked_out", "Connections lent out by the pool. (SQLAlchemy pool)", _LABELS, source=f"{_SOURCE}.checkedout()")  # noqa: E501
POOL_OVERFLOW = gauge("db_connection_pool_overflow", "Connections open beyond the pool size. (SQLAlchemy pool)", _LABELS, source=f"max(0, {_SOURCE}.overflow())")  # noqa: E501
# fmt: on

SPECS: tuple[MetricSpec, ...] = (POOL_SIZE, POOL_AVAILABLE, POOL_CHECKED_OUT, POOL_OVERFLOW)


@dataclass(frozen=True)
class PoolState:
    """What SQLAlchemy's pool says; None where the pool class has no such number."""

    capacity: int | None = None
    available: int | None = None
    checked_out: int | None = None
    overflow: int | None = None

    @property
    def exhausted(self) -> bool:
        return (
            self.capacity is not None
            and self.checked_out is not None
            and self.checked_out >= self.capacity
        )


def read_pool(pool: Pool) -> PoolState:
    """Pool numbers from the pool object itself: no I/O, no connection borrowed."""
    if isinstance(pool, QueuePool):
        max_overflow = int(getattr(pool, "_max_overflow", 0))
        return PoolState(
            capacity=pool.size() + max_overflow if max_overflow >= 0 else None,
            available=pool.checkedin(),
            checked_out=pool.checkedout(),
            overflow=max(0, pool.overflow()),
        )
    checked_out = getattr(pool, "checkedout", None)
    checked_in = getattr(pool, "checkedin", None)
    return PoolState(
        available=int(checked_in()) if callable(checked_in) else None,
        checked_out=int(checked_out()) if callable(checked_out) else None,
    )


#: PoolState field -> spec
_FIELDS: tuple[tuple[str, MetricSpec], ...] = (
    ("capacity", POOL_SIZE),
    ("available", POOL_AVAILABLE),
    ("checked_out", POOL_CHECKED_OUT),
    ("overflow", POOL_OVERFLOW),
)


def pool_families(database: str, state: PoolState) -> Iterator[Metric]:
    for attr, spec in _FIELDS:
        value = getattr(state, attr)
        if value is not None:
            yield spec.single(float(value), database)
