"""One SQL layer for every collector that reads a database through SQLAlchemy.

Modules: `dialect` (the interface and the registry, the only place that knows dialect
names), one module per dialect (`postgresql`, `mysql` for MySQL and MariaDB, `sqlite`),
`engine` (engines used under deadlines), `watchdog` (the client-side deadline), `pool`,
`statements`, `families` (families several dialects share), `prepared` (PostgreSQL's
server-side prepared statements on the exporter's own connections) and `errors`.

The public API, for the database collector and the SQL task queue alike:

- `check_url(value) -> str`: config check of a URL (supported dialect and driver, a
  database named; messages never echo the URL).
- `create_engine(url, EngineSettings(pool_size, connect_timeout_seconds,
  statement_timeout_seconds, application_name, autocommit)) -> BoundedEngine`: the
  exporter's own engine for a URL (pool of `pool_size`, no overflow, the dialect's connect
  arguments: PostgreSQL keepalives and `tcp_user_timeout`, PyMySQL socket timeouts, SQLite
  opened read-only).
  Creating it does not connect. `BoundedEngine(engine)` wraps an application's engine.
- `with bounded.connect(deadline, cap) as q:` waits for a pool slot at most until the
  deadline, connects within it (the connect timeout follows the deadline), pings, and yields
  `Queries`. `q.batch(statements)` / `q.tuples(sql)` run statements without parameters on
  the driver's own cursor (plain tuples, in as few round trips as the dialect allows, no
  engine events: what a scrape reads every time); `q.rows(sql, **params)` / `q.one(...)` /
  `q.execute(...)` (the `CursorResult`, for `keys()` and `mappings()`) go through SQLAlchemy.
  Each runs under a server-side limit
  of `min(cap, time left)` that never leaks into the pooled connection (PostgreSQL
  `set_config(..., is_local => true)`, MariaDB `SET STATEMENT max_statement_time=... FOR`,
  MySQL the `MAX_EXECUTION_TIME` hint, SQLite `interrupt()`), and a client-side guard cuts
  the connection at the deadline even when the network is gone. `q.read_only()` runs a block
  in a read-only transaction that is rolled back; `q.optional(what, ctx)` runs a part under
  a savepoint, noting and skipping it on a database error. With `autocommit` (PostgreSQL,
  the database collector's engine) each round trip is its own transaction: a checkout sends
  no BEGIN or ROLLBACK, `optional` needs no savepoint, `execute` and `read_only` open a
  transaction of their own, and the statements are prepared on the server once
  (`prepared`).
- `bounded.abandon()` (a run overran its deadline: cut its connection now) and
  `bounded.close()` (cut connections in use, dispose an owned engine) never wait on a
  thread blocked in I/O.
- `classify(exc)`: the bounded failure reason of a SQLAlchemy error.

Every connection `BoundedEngine.connect` checks out carries the execution option
`OWN_STATEMENTS`, so `observer.StatementObserver` (the application's own statements on its
engine, embedded mode) never counts the exporter's statements, whichever reader ran them.
"""

from __future__ import annotations

from collectors.sql.dialect import check_url, for_url, with_driver
from collectors.sql.engine import (
    APPLICATION_NAME,
    OWN_STATEMENTS,
    BoundedEngine,
    EngineSettings,
    create_engine,
)
from collectors.sql.errors import classify
from collectors.sql.queries import Queries

__all__ = [
    "APPLICATION_NAME",
    "OWN_STATEMENTS",
    "BoundedEngine",
    "EngineSettings",
    "Queries",
    "check_url",
    "classify",
    "create_engine",
    "for_url",
    "with_driver",
]
