"""The statement observer's cost per statement, beside a statement's own round trip.

    python benchmarks/statements.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Prints, from one run (medians of interleaved rounds):
- the listener alone (before_cursor_execute + after_cursor_execute on a real execution
  context's shape), with the classification memoised (an application repeating its
  statements) and with every statement new (a cache miss each time);
- `SELECT 1` through SQLAlchemy on SQLite in memory and on PostgreSQL, without and with the
  observer attached: the added time includes SQLAlchemy's own event dispatch, which runs only
  when a listener is attached.

Target: under 10 us per statement.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy  # noqa: E402
from sqlalchemy import text  # noqa: E402

from collectors.sql.observer import StatementObserver  # noqa: E402

#: what SQLAlchemy's ORM sends for a typical lookup
ORM_SELECT = (
    "SELECT fir.id AS fir_id, fir.title AS fir_title, fir.created_at AS fir_created_at "
    "FROM fir WHERE fir.id = %(pk_1)s::INTEGER"
)
ROUNDS = 7


def per_call(fn: Callable[[], None], calls: int) -> float:
    """Seconds per call of `fn`, over `calls` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def listener_alone(calls: int) -> tuple[float, float]:
    """(warm, cold) seconds per statement of the two listeners, called as SQLAlchemy does."""
    observer = StatementObserver(sqlalchemy.create_engine("sqlite://"), "app", 50)
    context = SimpleNamespace(execution_options={})

    def warm() -> None:
        observer._before(None, None, ORM_SELECT, None, context, False)
        observer._after(None, None, ORM_SELECT, None, context, False)

    # texts no earlier round used, so each one misses the memo
    round_id = time.perf_counter_ns()
    texts = [f"{ORM_SELECT} AND fir.n = {i} AND fir.r = {round_id}" for i in range(calls)]
    feed = iter(texts)

    def cold() -> None:
        statement = next(feed)
        observer._before(None, None, statement, None, context, False)
        observer._after(None, None, statement, None, context, False)

    return per_call(warm, calls), per_call(cold, min(calls, 2000))


def round_trip(engine: sqlalchemy.Engine, calls: int) -> float:
    with engine.connect() as conn:
        statement = text("SELECT 1")
        return per_call(lambda: conn.execute(statement).scalar(), calls)


def with_and_without(url: str, calls: int) -> tuple[float, float]:
    """Median seconds per `SELECT 1` without and with the observer, interleaved rounds."""
    engine = sqlalchemy.create_engine(url)
    plain: list[float] = []
    observed: list[float] = []
    try:
        round_trip(engine, calls // 10)  # connect and warm up
        for _ in range(ROUNDS):
            plain.append(round_trip(engine, calls))
            observer = StatementObserver(engine, "app", 50).attach()
            observed.append(round_trip(engine, calls))
            observer.detach()
    finally:
        engine.dispose()
    return statistics.median(plain), statistics.median(observed)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    warm = statistics.median(listener_alone(100_000)[0] for _ in range(ROUNDS))
    cold = statistics.median(listener_alone(2_000)[1] for _ in range(ROUNDS))
    print("listener alone (before + after, one statement)")
    print(f"  memoised classification: {us(warm)}")
    print(f"  new statement each time: {us(cold)}")
    print()
    print(f"{'SELECT 1 via SQLAlchemy':28} {'plain':>12} {'observed':>12} {'added':>10} ratio")
    for name, url, calls in (
        ("SQLite in memory", "sqlite://", 20_000),
        ("PostgreSQL (loopback)", args.url, 2_000),
    ):
        plain, observed = with_and_without(url, calls)
        print(
            f"{name:28} {us(plain):>12} {us(observed):>12} {us(observed - plain):>10} "
            f"{observed / plain:.3f}x"
        )


if __name__ == "__main__":
    main()
