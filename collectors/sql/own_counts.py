"""What the exporter itself makes a database server count, taken out of the counters it serves.

A server counts every client's work in its server-wide counters, the exporter's reads
included ("never measure yourself"):
- PostgreSQL's `pg_stat_database` counts transactions: each scrape is one read transaction
  ended by ROLLBACK, so served raw, `xact_rollback` grew by one a scrape on a database nobody
  else used, and a rollback-ratio alert read the exporter's reads as the application failing;
- MySQL's and MariaDB's `Com_*` count statements by type: each scrape sent three to five
  SELECTs and a ROLLBACK.

Everything the exporter makes a server count is recorded here, process-wide and per database
(the database collector's reads and the SQL task queue's, on the exporter's own engines and
on an application's): the transactions its connections end (SQLAlchemy's `commit` and
`rollback` events, and the pool's rollback on return where the driver sends one), the
statements it sends (`Dialect.command`), and what a new connection costs the server
(`Dialect.session_start`). The dialects serve the server's counters minus that share.

A server may report the exporter's work late (PostgreSQL flushes a session's counts when it
is idle), so at a reading some of what is recorded may not be in the server's total yet. A
served value is therefore a counter of its own: absent at the first reading, which only sets
the base (what the exporter's first connection did may not be reported yet); 0 at the next;
(server now - server at the base) - (own now - own at the base) after that; started again when
the server restarts or resets its statistics; and never going back: where that difference
dips below what was served, the value holds until the server's total catches up. It can lag
the application's count; it never runs ahead of it.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

if TYPE_CHECKING:
    from collectors.sql.dialect import Dialect

#: set on a pooled connection's record while the exporter has it checked out, so the pool's
#: rollback on its return is known to be the exporter's
OWN_CHECKOUT = "afirgen_exporter_checkout"
#: set on a connection of the exporter's own engine once its set-up has been recorded
SESSION_RECORDED = "afirgen_exporter_session_recorded"


def database_identity(url: URL) -> str:
    """The database a URL names, without credentials: two spellings are two databases."""
    host = url.host or str(url.query.get("host") or "")
    return f"{url.get_backend_name()}://{host.lower()}:{url.port or ''}/{url.database or ''}"


@dataclass
class _Attached:
    """The listeners on one engine, and how many users asked for them."""

    listeners: list[tuple[str, Callable[..., None]]]
    users: int = 1


class _Ledger:
    """What the exporter made each database count, by counter name, since the process started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {}
        self._engines: weakref.WeakKeyDictionary[Engine, _Attached] = weakref.WeakKeyDictionary()

    def record(self, identity: str, name: str | None, n: int = 1) -> None:
        if name is None or n <= 0:
            return
        with self._lock:
            self._counts.setdefault(identity, Counter())[name] += n

    def record_all(self, identity: str, counts: Mapping[str, int]) -> None:
        for name, n in counts.items():
            self.record(identity, name, n)

    def totals(self, identity: str, names: Iterable[str]) -> tuple[int, ...]:
        with self._lock:
            counts = self._counts.get(identity, Counter())
            return tuple(counts[name] for name in names)

    def attach(self, engine: Engine, dialect: Dialect, *, owned: bool) -> str:
        """Record what the exporter's connections on `engine` make the server count: those
        carrying its execution option, or all of them on an engine the exporter owns (what a
        new connection's set-up cost is recorded at its first checkout,
        `BoundedEngine.connect`). Listens once per engine however many collectors use it;
        `detach` once per `attach`."""
        from collectors.sql.engine import OWN_STATEMENTS

        identity = database_identity(engine.url)

        def ended(name: str) -> Callable[[Connection], None]:
            def listener(conn: Connection) -> None:
                if owned or conn.get_execution_options().get(OWN_STATEMENTS):
                    self.record(identity, name)

            return listener

        def returned(_: Any, record: Any, state: Any) -> None:
            # a connection returned with no transaction SQLAlchemy ended: the pool's rollback
            if record.info.pop(OWN_CHECKOUT, False) and not state.transaction_was_reset:
                if not state.terminate_only:
                    self.record(identity, "rollback")

        def sent(conn: Connection, _: Any, statement: str, *__: Any) -> None:
            if owned or conn.get_execution_options().get(OWN_STATEMENTS):
                self.record(identity, dialect.command(statement))

        listeners: list[tuple[str, Callable[..., None]]] = [
            ("commit", ended("commit")),
            ("rollback", ended("rollback")),
        ]
        # only where the server counts it: not on every statement of an application's engine
        if dialect.rollback_sent_when_idle:
            listeners.append(("reset", returned))
        if dialect.counts_statements:  # what goes through SQLAlchemy; `Dialect.run` the rest
            listeners.append(("before_cursor_execute", sent))
        with self._lock:
            attached = self._engines.get(engine)
            if attached is not None:
                attached.users += 1
                return identity
            attached = self._engines[engine] = _Attached(listeners)
            for name, listener in listeners:
                event.listen(engine, name, listener)
        return identity

    def detach(self, engine: Engine) -> None:
        with self._lock:
            attached = self._engines.get(engine)
            if attached is None:
                return
            attached.users -= 1
            if attached.users == 0:
                del self._engines[engine]
                for name, listener in attached.listeners:
                    event.remove(engine, name, listener)


LEDGER = _Ledger()


@dataclass
class _Base:
    """Where one set of served counters started, and what they last served."""

    epoch: Hashable
    since: float
    server: tuple[float, ...] = ()
    own: tuple[int, ...] = ()
    served: list[float] = field(default_factory=list)


class OwnExcluded:
    """One database's server-wide counters with the exporter's own share taken out, as
    counters from the first reading on (see the module's docstring)."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self._lock = threading.Lock()
        self._bases: dict[tuple[str, ...], _Base] = {}

    def serve(
        self,
        names: tuple[str, ...],
        server: Sequence[float],
        epoch: Hashable = None,
        since: float = 0.0,
    ) -> list[float] | None:
        """The values to serve for the server's counters `server` (recorded in the ledger as
        `names`), or None at a first reading. `epoch` names the server's counting period (its
        start time, its statistics reset) and `since` is a value that only grows within one
        (its uptime): a new epoch, a `since` gone back or a counter gone back starts the
        served counters again."""
        own = LEDGER.totals(self.identity, names)
        values = tuple(float(v) for v in server)
        with self._lock:
            base = self._bases.get(names)
            if (
                base is None
                or epoch != base.epoch
                or since < base.since
                or any(now < then for now, then in zip(values, base.server, strict=False))
            ):
                self._bases[names] = _Base(epoch, since)
                return None
            base.since = since
            if not base.server:
                base.server, base.own, base.served = values, own, [0.0] * len(values)
            for i, (now, then) in enumerate(zip(values, base.server, strict=True)):
                candidate = (now - then) - (own[i] - base.own[i])
                if candidate > base.served[i]:
                    base.served[i] = candidate
            return list(base.served)
