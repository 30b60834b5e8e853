"""(type, main table) of a SQL statement's text: a small bounded tokenizer, memoised.

`type` is one of `STATEMENT_TYPES` or `other`; `table` is the main table's name, lower-cased,
schema and quotes removed, or `other`. Only the first `SCAN_LIMIT` characters are read, and
results are memoised by that prefix in a cache of `CACHE_SIZE` entries (applications repeat
the same statements, and SQLAlchemy hands the same string object each time, whose hash Python
keeps). Comments and string literals are skipped; keywords are found at the statement's own
parenthesis depth, so `extract(epoch FROM ts)` or a subquery never names the table.
"""

from __future__ import annotations

import functools
import re

from collectors.sql.families import OTHER

STATEMENT_TYPES = ("select", "insert", "update", "delete")
#: characters of a statement the classifier reads (an `INSERT ... VALUES` of 10,000 rows
#: is classified from its head)
SCAN_LIMIT = 4096
#: distinct statement texts remembered
CACHE_SIZE = 2048

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<string>'(?:[^']|'')*(?:'|\Z))
    | (?P<quoted>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
    | (?P<word>[A-Za-z_][\w$]*)
    | (?P<punct>.)
    """,
    re.S | re.X,
)
#: words that may stand between a type keyword and the table (MySQL modifiers, ONLY...)
_SKIPPED = frozenset(
    {"only", "ignore", "low_priority", "high_priority", "delayed", "quick", "lateral"}
)
#: the keyword whose next name is the main table, per statement type
_TABLE_AFTER = {"select": "from", "insert": "into", "update": "update", "delete": "from"}


def _tokens(sql: str) -> list[tuple[str, str]]:
    """(kind, text) of each token; words lower-cased, comments and spaces dropped."""
    out = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "punct"
        if kind in ("space", "comment"):
            continue
        text = match.group()
        out.append((kind, text.lower() if kind == "word" else text))
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
        kind, text = tokens[i]
        name = text[1:-1].lower() if kind == "quoted" else text
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
    kind = "insert" if word == "replace" else word
    if kind not in STATEMENT_TYPES:
        return OTHER, OTHER
    if kind == "insert" and not any(t == "into" for _, t in tokens[i : i + 4]):
        return kind, _name_at(tokens, i + 1)  # MySQL: INSERT [IGNORE] t VALUES ...
    if kind == "update":
        return kind, _name_at(tokens, i + 1)
    return kind, _table_after(tokens, i + 1, _TABLE_AFTER[kind])


@functools.lru_cache(maxsize=CACHE_SIZE)
def _memoised(head: str) -> tuple[str, str]:
    return _classify(head)


def classify_statement(sql: str) -> tuple[str, str]:
    """(type, main table) of a statement, as the `type` and `table` labels."""
    # a str no longer than the limit slices to itself: its cached hash is reused
    return _memoised(sql[:SCAN_LIMIT])


def cache_info() -> functools._CacheInfo:
    """Hits, misses and size of the memo (for tests and the benchmark)."""
    return _memoised.cache_info()
