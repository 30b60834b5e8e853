"""Statement families: from the server's statement statistics, or observed on the app's engine.

Two sources fill the same families. Standalone, `statement_families` shapes what the server
tracks (pg_stat_statements, performance_schema digests): counts and total time, so the
duration histogram has only its `+Inf` bucket. Embedded, `collectors.sql.observer` times the
application's own statements and serves real buckets. The `type`/`table` labels come from
`collectors.sql.classify`, bounded by the table budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from collectors.base import ScrapeContext
from collectors.specs import FamilySet, MetricSpec, counter, histogram
from collectors.sql.classify import STATEMENT_TYPES
from collectors.sql.families import OTHER

_LABELS = ("database", "type", "table")
#: classic buckets of observed statement durations (seconds): 1 ms to 10 s
DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# fmt: off
QUERIES = counter("db_queries_total", "Statements executed, by type and main table.", _LABELS, source="embedded: the app's engine (after_cursor_execute, handle_error); else PostgreSQL pg_stat_statements calls (this database), MySQL/MariaDB performance_schema events_statements_summary_by_digest COUNT_STAR (this schema)")  # noqa: E501
QUERY_DURATION = histogram("db_query_duration_seconds", "Time spent executing statements, by type and main table.", _LABELS, unit="seconds", source="embedded: the app's engine, buckets 1 ms to 10 s (+ native); else PostgreSQL pg_stat_statements total_exec_time, MySQL/MariaDB SUM_TIMER_WAIT (picoseconds), +Inf bucket only")  # noqa: E501
QUERY_ERRORS = counter("db_query_errors_total", "Statements that failed, by type and main table (embedded mode).", _LABELS, source="the app's engine (handle_error)")  # noqa: E501
# fmt: on

SPECS: tuple[MetricSpec, ...] = (QUERIES, QUERY_DURATION, QUERY_ERRORS)

#: the same search as `classify`, for PostgreSQL's regexp_match (ARE syntax), so that the
#: server groups pg_stat_statements before sending it
PG_MAIN_TABLE = r"\m(?:from|into|update)\s+((?:\"?[\w$]+\"?\s*\.\s*)?\"?[\w$]+\"?)"
PG_FIRST_WORD = r"^\s*([A-Za-z]+)"


def statement_type(first_word: str | None) -> str:
    word = (first_word or "").lower()
    if word == "replace":
        return "insert"
    return word if word in STATEMENT_TYPES else OTHER


def table_name(token: str | None) -> str:
    """The table part of `schema.table` with quotes removed; `other` when there is none."""
    if not token:
        return OTHER
    name = token.replace("`", "").replace('"', "").split(".")[-1].strip()
    return name.lower() if name and name.upper() != "SELECT" else OTHER


#: (type, table, calls, seconds) of one statement group as the server tracks it
StatementRow = tuple[str, str, float, float]


def statement_families(
    ctx: ScrapeContext, rows: Sequence[StatementRow], out: FamilySet, limit: int
) -> None:
    """db_queries_total and db_query_duration_seconds (sum and count: the `+Inf` bucket) from
    the server's statistics, the busiest `limit` tables apart."""
    by_table: dict[str, float] = {}
    for _, table, calls, _ in rows:
        by_table[table] = by_table.get(table, 0.0) + calls
    kept = ctx.keep_top({t: c for t, c in by_table.items() if t != OTHER}, limit)
    totals: dict[tuple[str, str], tuple[float, float]] = {}
    for kind, table, calls, seconds in rows:
        key = (kind, table if table in kept else OTHER)
        count, total = totals.get(key, (0.0, 0.0))
        totals[key] = (count + calls, total + seconds)
    for (kind, table), (count, total) in sorted(totals.items()):
        out.add(QUERIES, count, kind, table)
        out.histogram(QUERY_DURATION, [("+Inf", count)], total, kind, table)
