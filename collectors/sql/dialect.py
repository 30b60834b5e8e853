"""The dialect interface and its registry: the one place that knows dialect names.

A `Dialect` says how to open, bound and read one kind of database: its drivers, the engine
and connection settings, the statement time limit, savepoints, read-only transactions, how to
interrupt a connection from another thread, and the server families it serves. Everything
else in `collectors.sql` and the collectors asks the registry (`for_url`, `for_connection`)
for the dialect object and calls its methods: no other module compares dialect names.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.engine import URL, Connection, make_url

from collectors.base import ScrapeContext
from collectors.specs import FamilySet, MetricSpec
from collectors.sql.own_counts import LEDGER

if TYPE_CHECKING:
    from collectors.sql.queries import Queries

_URL_HINT = (
    "expected dialect+driver://user@host:port/database, e.g. postgresql+psycopg://app@db/app"
)

#: A call with no arguments: an interrupt, a release or a restore of a connection.
Action = Callable[[], None]


@dataclass(frozen=True)
class ServerOptions:
    """What the server families of one scrape may read."""

    table_limit: int
    track_statements: bool
    #: the database file, for dialects that have one (SQLite)
    path: str | None = None


@dataclass(frozen=True)
class ConnectSettings:
    """How the exporter's own connections are opened (the engine settings of one target)."""

    application_name: str
    #: Upper bound for one statement; also bounds the drivers' socket timeouts.
    statement_timeout_seconds: float
    #: Seconds a connection being opened now may take (what is left of the deadline).
    connect_seconds: Callable[[], float]


class Dialect(abc.ABC):
    """One kind of database server, as the exporter talks to it."""

    #: the `dialect` label of db_server_info, and the registry key
    name: ClassVar[str]
    #: the names before `+` in the URLs this dialect serves (SQLAlchemy's "backend name")
    url_names: ClassVar[tuple[str, ...]]
    default_driver: ClassVar[str]
    drivers: ClassVar[frozenset[str]]
    #: families this dialect serves besides the shared ones (for SPECS and the docs)
    specs: ClassVar[tuple[MetricSpec, ...]] = ()
    #: False where nothing runs on a server (SQLite): the client cuts each statement instead
    limits_on_server: ClassVar[bool] = True
    #: True where the exporter's own engine may read in autocommit (`EngineSettings`): `run`
    #: then keeps each round trip's limits within that round trip's own transaction.
    autocommit_reads: ClassVar[bool] = False

    # -- configuration ------------------------------------------------------------------

    def check_url(self, url: URL) -> None:
        """Raise ValueError (never echoing the URL) when `url` cannot be watched."""
        if not url.database:
            raise ValueError("the URL names no database (add /DATABASE at the end)")

    def engine_arguments(self, url: URL, settings: ConnectSettings) -> dict[str, Any]:
        """Extra `create_engine` arguments (connect_args, creator...) for the own engine."""
        return {}

    @abc.abstractmethod
    def bound_connect(self, cparams: dict[str, Any], seconds: float) -> None:
        """Set the driver's connect timeout (and socket timeouts) from what is left."""

    # -- one statement ------------------------------------------------------------------

    #: the driver sends ROLLBACK when the pool returns a connection in no transaction (and
    #: the server counts it: MySQL's Com_rollback)
    rollback_sent_when_idle: ClassVar[bool] = False

    #: the server counts statements by type in counters the dialect serves (MySQL's Com_*),
    #: so the exporter's own are recorded by `command` (`own_counts`)
    counts_statements: ClassVar[bool] = False

    def command(self, sql: str) -> str | None:
        """The server's per-statement-type counter `sql` moves (`own_counts`), if served."""
        return None

    def session_start(self, q: Queries, first: bool) -> Mapping[str, int]:
        """What opening the connection `q` has just checked out for the first time (the
        engine's `first` connection) made the server count, the driver's and SQLAlchemy's
        set-up included (`own_counts`)."""
        return {}

    def ping_statement(self, conn: Connection) -> str:
        """What a checkout sends first, to know the connection is alive."""
        return "SELECT 1"

    @abc.abstractmethod
    def limited(self, conn: Connection, sql: str, seconds: float) -> str:
        """The statement to run so the server stops it after `seconds`.

        May run a statement first (a transaction-local setting); never leaves a session
        setting behind on the connection.
        """

    def run(
        self, q: Queries, cursor: Any, statements: Sequence[str], seconds: float
    ) -> list[list[tuple[Any, ...]]]:
        """Each statement's rows on the driver's `cursor`, under the server-side limit: one
        round trip each here; a dialect whose server takes several statements at once
        overrides it."""
        results = []
        for sql in statements:
            statement = self.limited(q.conn, sql, seconds)
            if self.counts_statements and q.own is not None:  # no SQLAlchemy event sees it
                LEDGER.record(q.own.identity, self.command(statement))
            cursor.execute(statement)
            results.append(list(cursor.fetchall()))
        return results

    def bound_io(self, dbapi_connection: Any, seconds: float) -> Action:
        """Bound the driver's socket reads and writes (drivers that have such timeouts) for
        the checkout that starts now; returns what puts the connection's own back."""
        return _nothing

    @abc.abstractmethod
    def interrupter(self, dbapi_connection: Any) -> tuple[Action, Action]:
        """(interrupt, release): `interrupt()` breaks any I/O in flight on the connection
        from another thread, without a lock the blocked thread holds; `release()` frees what
        was taken to do so."""

    @contextlib.contextmanager
    def savepoint(self, conn: Connection) -> Iterator[None]:
        """A part that can fail alone: rolled back to the savepoint on error."""
        nested = conn.begin_nested()
        try:
            yield
        except BaseException:
            nested.rollback()
            raise
        else:
            nested.commit()

    @abc.abstractmethod
    def start_read_only(self, conn: Connection) -> None:
        """Make the connection's current (just begun) transaction read-only."""

    def end_read_only(self, conn: Connection) -> None:  # noqa: B027
        """Undo what `start_read_only` set beyond the transaction (SQLite's pragma)."""

    # -- server families ----------------------------------------------------------------

    def server_name(self, conn: Connection) -> str:
        """The dialect as connected (a `mysql://` URL may reach MariaDB)."""
        return self.name

    @abc.abstractmethod
    def server_families(
        self, q: Queries, ctx: ScrapeContext, out: FamilySet, options: ServerOptions
    ) -> None:
        """Read the server's statistics into `out`."""


#: The supported URL names (`postgresql+psycopg://...`), in the order docs and messages list
#: them, and the module that registers each one's dialect.
URL_NAMES: Mapping[str, str] = {
    "postgresql": "collectors.sql.postgresql",
    "mysql": "collectors.sql.mysql",
    "mariadb": "collectors.sql.mysql",
    "sqlite": "collectors.sql.sqlite",
}
_REGISTRY: dict[str, Dialect] = {}
#: `registry()` once every dialect module is loaded (it is asked at every checkout)
_LOADED: dict[str, Dialect] = {}


def _nothing() -> None:
    """Nothing to undo or release."""


def register(dialect: Dialect) -> Dialect:
    for name in dialect.url_names:
        _REGISTRY[name] = dialect
    return dialect


def registry() -> Mapping[str, Dialect]:
    """URL name -> dialect, every dialect module loaded, in `URL_NAMES` order."""
    if not _LOADED:
        for module in dict.fromkeys(URL_NAMES.values()):
            importlib.import_module(module)
        _LOADED.update((name, _REGISTRY[name]) for name in URL_NAMES)
    return _LOADED


def dialects() -> list[Dialect]:
    """Each dialect once, in registry order."""
    return list(dict.fromkeys(registry().values()))


def for_url(url: URL) -> Dialect:
    dialect = registry().get(url.get_backend_name())
    if dialect is None:
        raise ValueError(f"unsupported dialect (supported: {', '.join(registry())})")
    return dialect


def for_connection(conn: Connection) -> Dialect | None:
    """The dialect of a live connection (MariaDB told apart from MySQL), or None."""
    dialect = registry().get(conn.dialect.name)
    if dialect is None:
        return None
    return registry().get(dialect.server_name(conn), dialect)


def check_url(value: str) -> str:
    """A URL SQLAlchemy can use with a supported dialect. Messages never echo the URL."""
    try:
        url = make_url(value)
        name, driver = url.get_backend_name(), url.get_driver_name()
        _ = url.port  # a non-numeric port raises here
    except Exception:  # noqa: BLE001 - any parse failure is the same config error
        raise ValueError(f"not a valid database URL ({_URL_HINT})") from None
    dialect = for_url(url)
    if "+" in url.drivername and driver not in dialect.drivers:
        raise ValueError(f"unsupported driver for {name} (use {name}+{dialect.default_driver})")
    dialect.check_url(url)
    return value


def with_driver(url: URL) -> URL:
    """`url` naming its dialect's default driver when it names none."""
    if "+" in url.drivername:
        return url
    name = url.get_backend_name()
    return url.set(drivername=f"{name}+{for_url(url).default_driver}")
