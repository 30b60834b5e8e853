"""The application's own statements on its engine (embedded mode): counts and durations.

SQLAlchemy's cursor events time every statement the application runs: `before_cursor_execute`
notes the start on the execution context, `after_cursor_execute` observes the duration, and
`handle_error` observes a failed statement (counted and timed to its error, and counted in
`db_query_errors_total`). One cursor call is one statement: an `executemany` with 500
parameter sets counts once (SQLAlchemy's `insertmanyvalues` batches of an ORM bulk insert
count once per batch, as the driver runs them).

The exporter's own statements on the application's engine (its server queries, the SQL task
queue) run on connections carrying the `OWN_STATEMENTS` execution option and are never
counted. `type`/`table` come from `collectors.sql.statements`; the first `table_limit` tables
seen keep their own series, later ones are counted under `other` (first come, so a series
never moves from one label to another).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client.metrics_core import Metric
from sqlalchemy import event
from sqlalchemy.engine import Engine

from collectors.base import ScrapeContext
from collectors.native_histogram import Histograms, HistogramSeries, NativeSettings
from collectors.specs import FamilySet
from collectors.sql.engine import OWN_STATEMENTS
from collectors.sql.families import OTHER
from collectors.sql.statements import (
    DURATION_BUCKETS,
    QUERIES,
    QUERY_DURATION,
    QUERY_ERRORS,
    classify_statement,
)

#: the attribute on SQLAlchemy's execution context holding a statement's start
_STARTED = "_afirgen_statement_started"
#: how many folded table names are remembered to count them in series_dropped
_FOLDED_MEMORY = 1000
#: (type, table) keys remembered for the fast path; past it, folded ones are looked up anew
_KEY_MEMORY = 4096


class StatementObserver:
    """Listens to one engine's cursor events and keeps the statement families."""

    def __init__(
        self,
        engine: Engine,
        database: str,
        table_limit: int,
        native: NativeSettings | None = NativeSettings(),  # noqa: B008 - frozen, shared
    ) -> None:
        self.engine = engine
        self.database = database
        self.table_limit = table_limit
        self.durations = Histograms(
            QUERY_DURATION.name,
            QUERY_DURATION.help,
            QUERY_DURATION.labels,
            buckets=DURATION_BUCKETS,
            native=native,
            unit="seconds",
        )
        self._series: dict[tuple[str, str], HistogramSeries] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._tables: set[str] = set()
        self._folded: set[str] = set()
        self._lock = threading.Lock()  # admissions and error counts only
        #: observations that raised inside the listener (never passed on to the application)
        self.listener_failures = 0
        self.attached = False

    # -- the engine's events --------------------------------------------------------------

    def attach(self) -> StatementObserver:
        if not self.attached:
            event.listen(self.engine, "before_cursor_execute", self._before)
            event.listen(self.engine, "after_cursor_execute", self._after)
            event.listen(self.engine, "handle_error", self._failed)
            self.attached = True
        return self

    def detach(self) -> None:
        if self.attached:
            event.remove(self.engine, "before_cursor_execute", self._before)
            event.remove(self.engine, "after_cursor_execute", self._after)
            event.remove(self.engine, "handle_error", self._failed)
            self.attached = False

    def _before(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if context is not None and not context.execution_options.get(OWN_STATEMENTS):
            setattr(context, _STARTED, time.perf_counter())

    def _after(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        ended = time.perf_counter()
        started = getattr(context, _STARTED, None)
        if started is None:
            return
        try:
            self._series_for(statement).observe(ended - started)
        except Exception:  # noqa: BLE001 - the application's statement must not fail for us
            self.listener_failures += 1

    def _failed(self, exception_context: Any) -> None:
        context = exception_context.execution_context
        started = getattr(context, _STARTED, None)
        if started is None or exception_context.statement is None:
            return
        try:
            delattr(context, _STARTED)  # a retried statement starts afresh
            self._series_for(exception_context.statement).observe(time.perf_counter() - started)
            key = classify_statement(exception_context.statement)
            key = (key[0], key[1] if key[1] in self._tables else OTHER)
            with self._lock:
                self._errors[key] = self._errors.get(key, 0) + 1
        except Exception:  # noqa: BLE001 - never mask the application's own error
            self.listener_failures += 1

    def _series_for(self, statement: str) -> HistogramSeries:
        key = classify_statement(statement)
        series = self._series.get(key)
        if series is None:
            series = self._admit(*key)
            if len(self._series) < _KEY_MEMORY:  # many distinct folded tables stay bounded
                self._series[key] = series
        return series

    def _admit(self, statement_type: str, table: str) -> HistogramSeries:
        """The series of a (type, table) seen for the first time: its own while the table
        budget lasts, else `other`."""
        with self._lock:
            if table != OTHER and table not in self._tables:
                if len(self._tables) < self.table_limit:
                    self._tables.add(table)
                else:
                    if len(self._folded) < _FOLDED_MEMORY:
                        self._folded.add(table)
                    table = OTHER
            return self.durations.labels(self.database, statement_type, table)

    # -- the families -----------------------------------------------------------------------

    def families(self, ctx: ScrapeContext | None = None) -> list[Metric]:
        """db_queries_total, db_query_duration_seconds and db_query_errors_total."""
        if ctx is not None:
            ctx.series_dropped += len(self._folded)
        durations = self.durations.family()
        if not durations.samples:
            return []
        out = FamilySet(self.database)
        for sample in durations.samples:
            if sample.name.endswith("_count"):
                out.add(QUERIES, sample.value, sample.labels["type"], sample.labels["table"])
        with self._lock:
            errors = sorted(self._errors.items())
        for (statement_type, table), count in errors:
            out.add(QUERY_ERRORS, count, statement_type, table)
        return [*out.families(), durations]
