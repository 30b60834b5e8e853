"""SQLAlchemy's connection pool, read from the pool object itself: no I/O, no checkout.

Only `QueuePool` (and `AsyncAdaptedQueuePool`, the pool of an `AsyncEngine`'s `sync_engine`)
keeps counts. `NullPool`, `StaticPool`, `SingletonThreadPool` and `AssertionPool` keep none
(their `status()` is a name), so nothing is served for them rather than a made-up number.
`available` is capacity minus checked out, so the backend's
`(size - available) / size * 100` is the utilisation: 0 when idle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from sqlalchemy.pool import Pool, QueuePool

from collectors.specs import MetricSpec, gauge

_LABELS = ("database",)
_SOURCE = "engine.pool"

# fmt: off
POOL_SIZE = gauge("db_connection_pool_size", "Capacity of the pool: pool size + max overflow. (SQLAlchemy QueuePool)", _LABELS, source=f"{_SOURCE}.size() + max_overflow")  # noqa: E501
POOL_AVAILABLE = gauge("db_connection_pool_available", "Connections the pool can still lend: capacity minus checked out. (SQLAlchemy QueuePool)", _LABELS, source=f"{_SOURCE}.size() + max_overflow - {_SOURCE}.checkedout()")  # noqa: E501
POOL_CHECKED_OUT = gauge("db_connection_pool_checked_out", "Connections lent out by the pool. (SQLAlchemy QueuePool)", _LABELS, source=f"{_SOURCE}.checkedout()")  # noqa: E501
POOL_IDLE = gauge("db_connection_pool_idle", "Idle connections held open in the pool. (SQLAlchemy QueuePool)", _LABELS, source=f"{_SOURCE}.checkedin()")  # noqa: E501
POOL_OVERFLOW = gauge("db_connection_pool_overflow", "Connections open beyond the pool size. (SQLAlchemy QueuePool)", _LABELS, source=f"max(0, {_SOURCE}.overflow())")  # noqa: E501
# fmt: on

SPECS: tuple[MetricSpec, ...] = (
    POOL_SIZE,
    POOL_AVAILABLE,
    POOL_CHECKED_OUT,
    POOL_IDLE,
    POOL_OVERFLOW,
)


@dataclass(frozen=True)
class PoolState:
    """What SQLAlchemy's pool says; None where the pool class has no such number."""

    capacity: int | None = None
    checked_out: int | None = None
    idle: int | None = None
    overflow: int | None = None

    @property
    def available(self) -> int | None:
        """Capacity minus checked out (None when the capacity is unbounded or unknown)."""
        if self.capacity is None or self.checked_out is None:
            return None
        return max(0, self.capacity - self.checked_out)

    @property
    def exhausted(self) -> bool:
        return self.available == 0


def read_pool(pool: Pool) -> PoolState:
    """Pool numbers from the pool object itself: no I/O, no connection borrowed."""
    if not isinstance(pool, QueuePool):  # AsyncAdaptedQueuePool is one
        return PoolState()
    max_overflow = int(getattr(pool, "_max_overflow", 0))
    return PoolState(
        # max_overflow -1 is "unlimited": no capacity, hence no available either
        capacity=pool.size() + max_overflow if max_overflow >= 0 else None,
        checked_out=pool.checkedout(),
        idle=pool.checkedin(),
        # overflow() counts from -size up while the pool fills: only the part above 0 is real
        overflow=max(0, pool.overflow()),
    )


#: PoolState attribute -> spec
_FIELDS: tuple[tuple[str, MetricSpec], ...] = (
    ("capacity", POOL_SIZE),
    ("available", POOL_AVAILABLE),
    ("checked_out", POOL_CHECKED_OUT),
    ("idle", POOL_IDLE),
    ("overflow", POOL_OVERFLOW),
)


def pool_families(database: str, state: PoolState) -> Iterator[Metric]:
    for attr, spec in _FIELDS:
        value = getattr(state, attr)
        if value is not None:
            yield spec.single(float(value), database)
