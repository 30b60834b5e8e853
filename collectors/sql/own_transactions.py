"""The exporter's own transactions per database, taken out of the server's transaction counters.

PostgreSQL counts every transaction in `pg_stat_database`, the exporter's reads included: each
scrape is one read transaction ended by ROLLBACK, so before this `xact_rollback` grew by one a
scrape on a database nobody else used, and a rollback-ratio alert read the exporter's own
reads as the application failing ("never measure yourself"). Every transaction the exporter
ends on a database (the database collector's reads, the SQL task queue's) is recorded here,
process-wide, by SQLAlchemy's `commit`/`rollback` connection events on its own connections;
the database collector serves the server's counters minus that share.

The server reports a backend's counts late (PostgreSQL flushes them when the backend is idle,
at most once a second), so at a reading some of the exporter's recorded transactions may not
be in the server's total yet. The served value is therefore a counter of its own: it starts at
0 at the first reading (and again after the server restarts or its statistics are reset), is
(server now - server then) - (own now - own then), and never goes back: where that difference
dips below what was served, the served value holds until the server's total catches up. It can
lag the truth by the exporter's unflushed transactions; it never runs ahead of it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

#: how a transaction ended, in the order counts are kept and served
OUTCOMES = ("commit", "rollback")


def database_identity(url: URL) -> str:
    """The database a URL names, without credentials: two spellings are two databases."""
    host = url.host or str(url.query.get("host") or "")
    return f"{url.get_backend_name()}://{host.lower()}:{url.port or ''}/{url.database or ''}"


class _Ledger:
    """Transactions the exporter ended, per database identity, since the process started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._engines: weakref.WeakKeyDictionary[Engine, _Attached] = weakref.WeakKeyDictionary()

    def record(self, identity: str, outcome: int) -> None:
        with self._lock:
            self._counts.setdefault(identity, [0, 0])[outcome] += 1

    def totals(self, identity: str) -> tuple[int, int]:
        with self._lock:
            commits, rollbacks = self._counts.get(identity, (0, 0))
        return commits, rollbacks

    def attach(self, engine: Engine, *, all_connections: bool) -> str:
        """Count the transactions ended on `engine`'s connections that carry the exporter's
        execution option (or on all of them, for an engine the exporter owns). Listens once
        per engine however many collectors use it; `detach` once per `attach`."""
        from collectors.sql.engine import OWN_STATEMENTS

        identity = database_identity(engine.url)

        def ended(outcome: int) -> Callable[[Connection], None]:
            def listener(conn: Connection) -> None:
                if all_connections or conn.get_execution_options().get(OWN_STATEMENTS):
                    self.record(identity, outcome)

            return listener

        listeners = [(name, ended(i)) for i, name in enumerate(OUTCOMES)]
        if all_connections:
            # PostgreSQL runs a session's start as a committed transaction, and SQLAlchemy
            # ends its first connection's dialect set-up with a rollback
            listeners.append(("connect", lambda *_: self.record(identity, 0)))
            listeners.append(("first_connect", lambda *_: self.record(identity, 1)))
        with self._lock:
            attached = self._engines.get(engine)
            if attached is not None:
                attached.users += 1
                return identity
            attached = self._engines[engine] = _Attached(listeners)
            for name, listener in attached.listeners:
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


@dataclass
class _Attached:
    """The listeners on one engine, and how many users asked for them."""

    listeners: list[tuple[str, Callable[..., None]]]
    users: int = 1


LEDGER = _Ledger()
#: the epoch before any reading (a server's can be None)
_NONE = object()


class OwnExcluded:
    """One database's server-wide transaction counters with the exporter's own taken out, as
    counters since the first reading (see the module's docstring)."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self._lock = threading.Lock()
        self._epoch: Hashable = _NONE
        self._server_base: tuple[float, ...] = ()
        self._own_base: tuple[int, int] = (0, 0)
        self._served: list[float] = []

    def serve(self, server: Sequence[float], epoch: Hashable) -> list[float] | None:
        """Commits and rollbacks to serve for the server's `(commits, rollbacks)`, or None at
        a first reading. `epoch` names the server's counting period (its start time and
        statistics reset): in a new one the served counters start again from 0.

        A first reading only sets the base, from the next one: at the first, the exporter's
        own first transactions (its session's start, SQLAlchemy's set-up) may not be in the
        server's total yet, and would later be served as the application's."""
        own = LEDGER.totals(self.identity)
        values = tuple(float(v) for v in server)
        with self._lock:
            if epoch != self._epoch or any(
                now < then for now, then in zip(values, self._server_base, strict=False)
            ):
                self._epoch, self._server_base, self._served = epoch, (), []
                return None
            if not self._server_base:
                self._server_base, self._own_base = values, own
                self._served = [0.0] * len(values)
            for i, (now, then) in enumerate(zip(values, self._server_base, strict=True)):
                candidate = (now - then) - (own[i] - self._own_base[i])
                if candidate > self._served[i]:
                    self._served[i] = candidate
            return list(self._served)
