"""Statement families: from the server's statement statistics, or observed on the app's engine.

Two sources fill the same families. Standalone, `statement_families` shapes what the server
tracks (pg_stat_statements, performance_schema digests): counts and total time, so the
duration histogram has only its `+Inf` bucket. Embedded, `collectors.sql.observer` times the
application's own statements and serves real buckets. `type` is one of `STATEMENT_TYPES` or
`other`; `table` is the main table's name, lower-cased, schema and quotes removed, or `other`;
the table budget bounds how many keep their own series.

The classifier reads only the first `SCAN_LIMIT` characters of a statement and memoises its
answers by that prefix in a cache of `CACHE_SIZE` entries (applications repeat the same
statements, and SQLAlchemy hands the same string object each time, whose hash Python keeps).
Comments and string literals are skipped; keywords are found at the statement's own
parenthesis depth, so `extract(epoch FROM ts)` or a subquery never names the table, and
`WITH ... AS (...)` heads are skipped to the main statement.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from collectors.base import ScrapeContext
from collectors.specs import FamilySet, MetricSpec, counter, histogram
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

#: a simpler search than `classify_statement`, for PostgreSQL's regexp_match (ARE syntax),
#: so that the server groups pg_stat_statements before sending it
PG_MAIN_TABLE = r"\m(?:from|into|update)\s+((?:\"?[\w$]+\"?\s*\.\s*)?\"?[\w$]+\"?)"
#: the first word; of a `PREPARE name [(types)] AS statement` (the exporter's own reads, an
#: application's SQL-level PREPARE) the prepared statement's, which is what pg_stat_statements
#: counts the executions of (case-insensitive, like PG_MAIN_TABLE)
PG_FIRST_WORD = r"^\s*(?:prepare\s+[\w$]+\s*(?:\([^)]*\))?\s*as\s+)?([a-z]+)"

STATEMENT_TYPES = ("select", "insert", "update", "delete")
#: characters of a statement the classifier reads (an `INSERT ... VALUES` of 10,000 rows
#: is classified from its head)
SCAN_LIMIT = 4096
#: distinct statement texts remembered
CACHE_SIZE = 2048

#: comments, strings, quoted names, words and the punctuation that matters; anything else
#: (spaces, numbers, operators, placeholders) is skipped by not matching
_TOKEN = re.compile(
    r"--[^\n]*|/\*.*?(?:\*/|\Z)"  # comments
    r"|'(?:[^']|'')*'?"  # string literals
    r'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]'  # quoted names
    r"|[A-Za-z_][\w$]*"  # words
    r"|[().,]",
    re.S,
)
#: words that may stand between a type keyword and the table (MySQL modifiers, ONLY...)
_SKIPPED = frozenset(
    {"only", "ignore", "low_priority", "high_priority", "delayed", "quick", "lateral"}
)
#: the keyword whose next name is the main table, per statement type
_TABLE_AFTER = {"select": "from", "insert": "into", "update": "update", "delete": "from"}


def _tokens(sql: str) -> list[tuple[str, str]]:
    """(token_class, text) of each token: `word` (lower-cased), `quoted`, `punct`; comments and
    string literals dropped."""
    out = []
    for text in _TOKEN.findall(sql):
        first = text[0]
        if first in "-/'":
            continue
        if first in '"`[':
            out.append(("quoted", text))
        elif first in "().,":
            out.append(("punct", text))
        else:
            out.append(("word", text.lower()))
    return out


def _skip_ctes(tokens: list[tuple[str, str]], i: int) -> int:
    """Index of the main statement after `WITH [RECURSIVE] a AS (...), b AS (...)`."""
    n = len(tokens)
    i += 1
    if i < n and tokens[i][1] == "recursive":
        i += 1
    while i < n:
        while i < n and tokens[i][1] != "as":  # the name and its column list
            i = _after_parens(tokens, i) if tokens[i][1] == "(" else i + 1
        while i < n and tokens[i][1] != "(":  # AS [NOT] [MATERIALIZED]
            i += 1
        i = _after_parens(tokens, i)  # the body
        if i < n and tokens[i][1] == ",":
            i += 1
            continue
        return i
    return i


def _after_parens(tokens: list[tuple[str, str]], i: int) -> int:
    """Index after the parenthesised group opening at `i` (or `i` if none opens there)."""
    if i >= len(tokens) or tokens[i][1] != "(":
        return i
    depth = 0
    while i < len(tokens):
        if tokens[i][1] == "(":
            depth += 1
        elif tokens[i][1] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _name_at(tokens: list[tuple[str, str]], i: int) -> str:
    """The table named at `i`: the last part of `schema.table`, quotes removed."""
    while i < len(tokens) and tokens[i][1] in _SKIPPED:
        i += 1
    name = OTHER
    while i < len(tokens) and tokens[i][0] in ("word", "quoted"):
        token_class, text = tokens[i]
        name = text[1:-1].lower() if token_class == "quoted" else text
        if i + 1 < len(tokens) and tokens[i + 1][1] == ".":
            i += 2
            continue
        break
    return name or OTHER


def _table_after(tokens: list[tuple[str, str]], start: int, keyword: str) -> str:
    """The name after the first `keyword` at the statement's own depth (not in parens)."""
    depth = 0
    for i in range(start, len(tokens)):
        text = tokens[i][1]
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif depth == 0 and text == keyword and tokens[i][0] == "word":
            return _name_at(tokens, i + 1)
    return OTHER


def _classify(head: str) -> tuple[str, str]:
    tokens = _tokens(head)
    i = 0
    while i < len(tokens) and tokens[i][1] == "(":  # (SELECT ...) UNION ...
        i += 1
    if i < len(tokens) and tokens[i][1] == "with":
        i = _skip_ctes(tokens, i)
    if i >= len(tokens) or tokens[i][0] != "word":
        return OTHER, OTHER
    word = tokens[i][1]
    statement_type = "insert" if word == "replace" else word
    if statement_type not in STATEMENT_TYPES:
        return OTHER, OTHER
    if statement_type == "insert" and not any(t == "into" for _, t in tokens[i : i + 4]):
        return statement_type, _name_at(tokens, i + 1)  # MySQL: INSERT [IGNORE] t VALUES ...
    if statement_type == "update":
        return statement_type, _name_at(tokens, i + 1)
    return statement_type, _table_after(tokens, i + 1, _TABLE_AFTER[statement_type])


@functools.lru_cache(maxsize=CACHE_SIZE)
def _memoised(head: str) -> tuple[str, str]:
    return _classify(head)


def classify_statement(sql: str) -> tuple[str, str]:
    """(type, main table) of a statement, as the `type` and `table` labels."""
    # a str no longer than the limit slices to itself: its cached hash is reused
    return _memoised(sql[:SCAN_LIMIT])


def classifier_cache() -> functools._CacheInfo:
    """Hits, misses and size of the memo (for tests and the benchmark)."""
    return _memoised.cache_info()


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
    for statement_type, table, calls, seconds in rows:
        key = (statement_type, table if table in kept else OTHER)
        count, total = totals.get(key, (0.0, 0.0))
        totals[key] = (count + calls, total + seconds)
    for (statement_type, table), (count, total) in sorted(totals.items()):
        out.add(QUERIES, count, statement_type, table)
        out.histogram(QUERY_DURATION, [("+Inf", count)], total, statement_type, table)
