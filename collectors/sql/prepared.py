"""Server-side prepared statements on the exporter's own PostgreSQL connections.

Planning the statistics views (`pg_stat_activity`, `pg_stat_user_tables`) was most of what
the server spent on a scrape: about 0.5 ms of 0.7 ms on PostgreSQL 15. On its own autocommit
connection the exporter therefore `PREPARE`s each statement it reads once (a round trip of
its own, the first time a connection sees the statement) and then sends `EXECUTE name` in
the same simple-protocol string as the transaction-local limits: still one round trip and one
implicit transaction, no planning, and less for the client than psycopg's pipeline.

Only the exporter's own sessions get them (an application's connection is never left with a
statement of ours). A session that does not have them (a pooler such as PgBouncer in
transaction mode lends another server session) answers `26000`: that connection goes back
to the plain statements for good.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collectors.sql.queries import Queries

#: SQLSTATEs of a server session that lacks (26000) or already has (42P05) our statements
PREPARED_GONE = frozenset({"26000", "42P05"})
#: connection info key: (the driver's connection, statements -> what runs them there (the
#: EXECUTEs of those prepared), or None when it uses none)
_PREPARED = "afirgen_exporter_prepared"
#: statement text -> its name (the readers' fixed statements; bounded for any others)
_NAMES: dict[str, str] = {}
_MAX_NAMES = 256


def name_of(sql: str) -> str:
    """A name for `sql` that no other statement text gets (a digest of it)."""
    name = _NAMES.get(sql)
    if name is None:
        name = "afirgen_" + hashlib.blake2s(sql.encode(), digest_size=10).hexdigest()
        if len(_NAMES) < _MAX_NAMES:
            _NAMES[sql] = name
    return name


def prepared(q: Queries, cursor: Any, limits: str, statements: Sequence[str]) -> list[str] | None:
    """`EXECUTE name` for each query, preparing those this connection lacks first (one round
    trip, under `limits`); None when the connection does not use prepared statements.
    Kept in the pool record's info, which SQLAlchemy clears for a new connection."""
    info = q.conn.info
    connection = cursor.connection
    kept = info.get(_PREPARED)
    if kept is None or kept[0] is not connection:
        kept = info[_PREPARED] = (connection, {})
    done: dict[tuple[str, ...], list[str]] | None = kept[1]
    if done is None:
        return None
    key = tuple(statements)
    executes = done.get(key)
    if executes is not None:  # every scrape after the first
        return executes
    names = {name for batch in done.values() for name in batch}
    wanted = [(name_of(sql) if preparable(sql) else None, sql) for sql in statements]
    missing = {
        name: sql for name, sql in wanted if name is not None and f"EXECUTE {name}" not in names
    }
    if missing:
        try:
            with q.round_trip():
                cursor.execute(
                    ";\n".join(
                        (limits, *(f"PREPARE {name} AS {sql}" for name, sql in missing.items()))
                    )
                )
        except Exception as exc:
            if getattr(exc, "sqlstate", None) not in PREPARED_GONE:
                raise
            give_up(q, connection)
            return None
    executes = [sql if name is None else f"EXECUTE {name}" for name, sql in wanted]
    if len(done) < _MAX_NAMES:
        done[key] = executes
    return executes


def preparable(sql: str) -> bool:
    """A query PREPARE takes (what the readers send; SHOW and the like are sent as they are)."""
    head = sql[:7].upper()
    return head.startswith(("SELECT", "WITH ", "WITH\n", "VALUES"))


def give_up(q: Queries, connection: Any) -> None:
    """This connection reads with the plain statements from now on."""
    q.conn.info[_PREPARED] = (connection, None)
