"""Databases through SQLAlchemy: the connection pool and the server's own statistics.

Standalone, each configured database gets one small long-lived engine (`collectors.sql`:
connect timeout from the deadline, `application_name` / `program_name` =
`afirgen-exporter`). Embedded, `from_engine` reads the application's engine, so the pool
numbers describe the pool the application uses. The pool is read before the collector
borrows a connection, so they never count the exporter.

Every statement runs under a server-side time limit derived from the scrape deadline and a
client-side guard that cuts the connection at the deadline (`collectors.sql.engine`), so
neither a blocked query nor a dead network holds a later scrape. Nothing is left set on a
borrowed connection. Statement counts come, embedded, from the application's own statements
on its engine (`collectors.sql.observer`: a histogram with buckets; the exporter's own
statements excluded), else from what the server tracks (pg_stat_statements,
performance_schema digests: sum and count); without either those families are absent and a
landing-page note says why.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client.metrics_core import Metric
from sqlalchemy.engine import URL, Engine, make_url

from collectors.base import ScrapeContext, SourceCollector
from collectors.checks import check_limit, check_positive
from collectors.native_histogram import NativeSettings
from collectors.secret import Secret
from collectors.specs import FamilySet, MetricSpec
from collectors.sql import (
    APPLICATION_NAME,
    BoundedEngine,
    EngineSettings,
    check_url,
    classify,
    create_engine,
    with_driver,
)
from collectors.sql import families as common
from collectors.sql.dialect import ServerOptions, dialects
from collectors.sql.observer import StatementObserver
from collectors.sql.pool import SPECS as POOL_SPECS
from collectors.sql.pool import pool_families, read_pool
from collectors.sql.statements import SPECS as STATEMENT_SPECS

#: Every family this collector can serve: pool, shared, statements, then each dialect's own.
SPECS: tuple[MetricSpec, ...] = (
    *POOL_SPECS,
    *common.SPECS,
    *STATEMENT_SPECS,
    *(spec for dialect in dialects() for spec in dialect.specs),
)


def check_database_url(value: str) -> str:
    return check_url(value)


def check_pool_size(value: int) -> int:
    if not 1 <= value <= 4:
        raise ValueError(f"must be 1-4, got {value}")
    return value


@dataclass(frozen=True)
class Options:
    """`collectors.database:` — defaults for every database (and for embedded engines)."""

    #: At most this many tables (per family) and statement tables; the rest fold into `other`.
    table_limit: int = field(default=50, metadata={"check": check_limit})
    #: Statement metrics: the app's own statements (embedded), else pg_stat_statements /
    #: performance_schema digests where the server has them.
    track_statements: bool = True
    #: Upper bound for one statement; the scrape deadline lowers it further.
    statement_timeout_seconds: float = field(default=5.0, metadata={"check": check_positive})


@dataclass(frozen=True)
class Target:
    """One entry of `databases:`."""

    name: str
    url: str = field(metadata={"check": check_database_url})
    #: Replaces any password in the URL; `${ENV}` works here.
    password: Secret | None = None
    password_file: str | None = field(default=None, metadata={"secret_file_for": "password"})
    #: This database's own limit inside the scrape deadline.
    timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    connect_timeout_seconds: float = field(default=5.0, metadata={"check": check_positive})
    statement_timeout_seconds: float | None = field(
        default=None, metadata={"check": check_positive}
    )
    table_limit: int | None = field(default=None, metadata={"check": check_limit})
    track_statements: bool | None = None
    #: Connections the exporter keeps open to this database (scrapes never overlap).
    pool_size: int = field(default=1, metadata={"check": check_pool_size})
    #: How the exporter's connections are named on the server (pg_stat_activity etc.).
    application_name: str = APPLICATION_NAME


def effective_options(options: Options | None, target: Target) -> Options:
    """Collector-wide options with this target's overrides applied."""
    base = options or Options()
    overrides: dict[str, Any] = {}
    if target.table_limit is not None:
        overrides["table_limit"] = target.table_limit
    if target.track_statements is not None:
        overrides["track_statements"] = target.track_statements
    if target.statement_timeout_seconds is not None:
        overrides["statement_timeout_seconds"] = target.statement_timeout_seconds
    return replace(base, **overrides)


def standalone_url(target: Target) -> URL:
    url = with_driver(make_url(target.url))
    if target.password:
        url = url.set(password=target.password.reveal())
    return url


def build(options: Options | None, target: Target) -> DatabaseCollector:
    """A collector with its own small engine. Creating an engine does not connect."""
    url = standalone_url(target)
    secrets = [s for s in (url.password, target.password and target.password.reveal()) if s]
    effective = effective_options(options, target)
    settings = EngineSettings(
        pool_size=target.pool_size,
        connect_timeout_seconds=target.connect_timeout_seconds,
        statement_timeout_seconds=effective.statement_timeout_seconds,
        application_name=target.application_name,
        autocommit=True,  # reads only: no BEGIN/ROLLBACK round trips
    )
    return DatabaseCollector(
        target.name, create_engine(url, settings), effective, secrets=[str(s) for s in secrets]
    )


def from_engine(
    engine: Engine,
    name: str = "app",
    options: Options | None = None,
    *,
    observe_statements: bool = True,
    native: NativeSettings | None = NativeSettings(),  # noqa: B008 - frozen, shared
) -> SourceCollector:
    """Embedded mode: a collector on the application's own engine (its pool, its server and,
    unless `observe_statements` is False or `track_statements` is off, its own statements,
    which then replace the server's statement statistics; `native` sets the duration
    histogram's native buckets, None for classic only). `close()` removes the listener."""
    password = engine.url.password
    effective = options or Options()
    observer = None
    if observe_statements and effective.track_statements:
        observer = StatementObserver(engine, name, effective.table_limit, native).attach()
    return DatabaseCollector(
        name,
        BoundedEngine(engine),
        effective,
        secrets=[str(password)] if password else [],
        observer=observer,
    )


class DatabaseCollector(SourceCollector):
    collector = "database"

    def __init__(
        self,
        name: str,
        bounded: BoundedEngine,
        options: Options,
        *,
        secrets: Sequence[str] = (),
        observer: StatementObserver | None = None,
    ) -> None:
        super().__init__(name, secrets=secrets)
        self.bounded = bounded
        self.engine = bounded.engine
        self.options = options
        #: the application's own statements (embedded); they replace the server's statistics
        self.observer = observer

    @property
    def owns_engine(self) -> bool:
        return self.bounded.owned

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        pool = read_pool(self.engine.pool)  # before borrowing: never counts the exporter
        yield from pool_families(self.name, pool)
        if self.observer is not None:
            yield from self.observer.families(ctx)
        if pool.exhausted and not self.owns_engine:
            ctx.note("application pool exhausted: server not queried this scrape")
            return
        out = FamilySet(self.name)
        server = ServerOptions(
            self.options.table_limit,
            self.options.track_statements and self.observer is None,
            self.engine.url.database,
        )
        with self.bounded.connect(ctx.deadline, self.options.statement_timeout_seconds) as q:
            q.dialect.server_families(q, ctx, out, server)
        yield common.UP.single(1.0, self.name)
        yield common.PING.single(q.ping_seconds, self.name)
        yield from out.families()

    def down_families(self) -> list[Metric]:
        """db_up 0, and the pool numbers (reading the pool object needs no I/O)."""
        families: list[Metric] = [common.UP.single(0.0, self.name)]
        try:
            families.extend(pool_families(self.name, read_pool(self.engine.pool)))
            if self.observer is not None:  # the app's statements are counted all the same
                families.extend(self.observer.families())
        except Exception:  # noqa: BLE001 - the down report must not fail
            pass
        return families

    def classify(self, exc: BaseException) -> str:
        return classify(exc)

    def abandon(self) -> None:
        self.bounded.abandon()

    def close(self) -> None:
        if self.observer is not None:
            self.observer.detach()
        self.bounded.close()
