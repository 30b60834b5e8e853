"""Statements: (type, main table) from a statement's text, and the statement families.

The classifier is bounded: `type` is one of `STATEMENT_TYPES` or `other`, `table` is a
lower-cased identifier (schema and quotes removed) or `other`; the table budget then caps
how many tables keep their own series.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from collectors.base import ScrapeContext
from collectors.specs import FamilySet, MetricSpec, counter, summary
from collectors.sql.families import OTHER

STATEMENT_TYPES = ("select", "insert", "update", "delete")

# fmt: off
QUERIES = counter("db_queries_total", "Statements executed, by type and main table.", ("database", "type", "table"), source="PostgreSQL pg_stat_statements calls (this database); MySQL/MariaDB performance_schema events_statements_summary_by_digest COUNT_STAR (this schema)")  # noqa: E501
QUERY_DURATION = summary("db_query_duration_seconds", "Time spent executing statements, by type and main table.", ("database", "type", "table"), unit="seconds", source="PostgreSQL pg_stat_statements total_exec_time; MySQL/MariaDB SUM_TIMER_WAIT (picoseconds)")  # noqa: E501
# fmt: on

SPECS: tuple[MetricSpec, ...] = (QUERIES, QUERY_DURATION)

_FIRST_WORD = re.compile(r"^\s*(?:/\*.*?\*/\s*)*([A-Za-z]+)", re.S)
_MAIN_TABLE = re.compile(
    r"\b(?:from|into|update)\s+((?:[`\"]?[\w$]+[`\"]?\s*\.\s*)?[`\"]?[\w$]+[`\"]?)",
    re.IGNORECASE,
)
#: the same search, for PostgreSQL's regexp_match (ARE syntax)
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


def classify_statement(sql: str) -> tuple[str, str]:
    """(type, main table) of a normalised statement text, as the `type`/`table` labels."""
    first = _FIRST_WORD.match(sql)
    table = _MAIN_TABLE.search(sql)
    return statement_type(first.group(1) if first else None), table_name(
        table.group(1) if table else None
    )


#: (type, table, calls, seconds) of one statement group as the server tracks it
StatementRow = tuple[str, str, float, float]


def statement_families(
    ctx: ScrapeContext, rows: Sequence[StatementRow], out: FamilySet, limit: int
) -> None:
    """db_queries_total and db_query_duration_seconds, the busiest `limit` tables apart."""
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
        out.summary(QUERY_DURATION, count, total, kind, table)
