"""Families more than one dialect serves, declared once, and the per-table budget.

Each spec's `source` names where every dialect reads it; a dialect module maps its own
columns or status variables onto these specs and declares only the families it alone has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.samples import Sample

from collectors.base import ScrapeContext
from collectors.specs import FamilySet, MetricSpec, counter, gauge

OTHER = "other"
_DB = ("database",)
_TABLE = ("database", "table")

# fmt: off
UP = gauge("db_up", "1 if the database answered this scrape.", _DB, source="the scrape")
PING = gauge("db_ping_duration_seconds", "Round trip of SELECT 1 on a pooled connection.", _DB, unit="seconds", source="SELECT 1 on the checked-out connection")  # noqa: E501
SERVER_INFO = gauge("db_server_info", "Server dialect and version.", ("database", "dialect", "version"), source="PostgreSQL server_version; MySQL/MariaDB @@version; SQLite sqlite_version()")  # noqa: E501
SIZE = gauge("db_size_bytes", "Size of the database on disk.", _DB, unit="bytes", source="PostgreSQL pg_database_size(); MySQL/MariaDB information_schema.TABLES DATA_LENGTH + INDEX_LENGTH; SQLite page_count x page_size")  # noqa: E501
CONNECTIONS = gauge("db_connections", "Client connections to the server by state.", ("database", "state"), source="PostgreSQL pg_stat_activity (client url_names, server-wide); MySQL/MariaDB SHOW GLOBAL STATUS Threads_running (active), Threads_connected - Threads_running (idle)")  # noqa: E501
CONNECTIONS_MAX = gauge("db_connections_max", "The server's max_connections.", _DB, source="PostgreSQL max_connections; MySQL/MariaDB @@max_connections")  # noqa: E501
DEADLOCKS = counter("db_deadlocks_total", "Deadlocks detected.", _DB, source="PostgreSQL pg_stat_database deadlocks; MariaDB Innodb_deadlocks (absent on MySQL)")  # noqa: E501

TABLE_ROWS_READ = counter("db_table_rows_read_total", "Rows read from the table.", _TABLE, source="PostgreSQL pg_stat_user_tables seq_tup_read + idx_tup_fetch; MySQL/MariaDB performance_schema table_io_waits_summary_by_table COUNT_FETCH")  # noqa: E501
TABLE_ROWS_INSERTED = counter("db_table_rows_inserted_total", "Rows inserted into the table.", _TABLE, source="PostgreSQL pg_stat_user_tables n_tup_ins; MySQL/MariaDB performance_schema COUNT_INSERT")  # noqa: E501
TABLE_ROWS_UPDATED = counter("db_table_rows_updated_total", "Rows updated in the table.", _TABLE, source="PostgreSQL pg_stat_user_tables n_tup_upd; MySQL/MariaDB performance_schema COUNT_UPDATE")  # noqa: E501
TABLE_ROWS_DELETED = counter("db_table_rows_deleted_total", "Rows deleted from the table.", _TABLE, source="PostgreSQL pg_stat_user_tables n_tup_del; MySQL/MariaDB performance_schema COUNT_DELETE")  # noqa: E501
TABLE_LIVE_ROWS = gauge("db_table_live_rows", "Estimated live rows in the table.", _TABLE, source="PostgreSQL pg_stat_user_tables n_live_tup; MySQL/MariaDB information_schema.TABLES TABLE_ROWS (an estimate for InnoDB)")  # noqa: E501
TABLE_SIZE = gauge("db_table_size_bytes", "Table size on disk including indexes.", _TABLE, unit="bytes", source="PostgreSQL pg_total_relation_size(); MySQL/MariaDB DATA_LENGTH + INDEX_LENGTH; SQLite dbstat")  # noqa: E501
# fmt: on

SPECS: tuple[MetricSpec, ...] = (
    UP,
    PING,
    SERVER_INFO,
    SIZE,
    CONNECTIONS,
    CONNECTIONS_MAX,
    DEADLOCKS,
    TABLE_ROWS_READ,
    TABLE_ROWS_INSERTED,
    TABLE_ROWS_UPDATED,
    TABLE_ROWS_DELETED,
    TABLE_LIVE_ROWS,
    TABLE_SIZE,
)


@dataclass(frozen=True)
class TableStat:
    """One per-table value: its spec, the row's column, and how folded tables combine."""

    spec: MetricSpec
    column: str
    fold: Callable[[Sequence[float]], float] = sum


SIZE_STAT = TableStat(TABLE_SIZE, "size")
#: rows touched and live rows, under the column names every dialect's table query uses
ROW_STATS: tuple[TableStat, ...] = (
    TableStat(TABLE_ROWS_READ, "rows_read"),
    TableStat(TABLE_ROWS_INSERTED, "inserted"),
    TableStat(TABLE_ROWS_UPDATED, "updated"),
    TableStat(TABLE_ROWS_DELETED, "deleted"),
    TableStat(TABLE_LIVE_ROWS, "live"),
)
#: what ranks tables for the budget: rows touched plus live rows
ACTIVITY_COLUMNS = ("rows_read", "inserted", "updated", "deleted", "live")

TableRows = Mapping[str, Mapping[str, float | None]]


def fold_tables(
    ctx: ScrapeContext,
    rows: TableRows,
    stats: Sequence[TableStat],
    out: FamilySet,
    limit: int,
    weigh_by: Sequence[str] = ACTIVITY_COLUMNS,
) -> None:
    """Per-table values for the `limit` tables with the most activity (or whatever `weigh_by`
    names); the others are summed under `other` (ages: the oldest)."""
    weights: dict[str, float] = {}
    for table, values in rows.items():
        weight = 0.0
        for column in weigh_by:
            value = values.get(column)
            if value:
                weight += value
        weights[table] = weight
    # a table really named `other` joins the `other` series rather than duplicating it
    kept = ctx.keep_top({t: w for t, w in weights.items() if t != OTHER}, limit)
    ordered = sorted(rows.items())
    #: label names -> each kept table's labels (copied into each of its samples)
    labels: dict[tuple[str, ...], dict[str, dict[str, str]]] = {}
    make = tuple.__new__
    for stat in stats:
        column = stat.column
        samples: list[Sample] | None = None  # made on the first value: no empty family
        folded: list[float] = []
        for table, values in ordered:
            value = values.get(column)
            if value is None:
                continue
            if table in kept:
                if samples is None:
                    samples, name = _samples_of(out, stat.spec)
                    if stat.spec.labels not in labels:
                        labels[stat.spec.labels] = _labels(stat.spec, out, kept)
                    by_table = labels[stat.spec.labels]
                # the Sample add_metric appends, without its per-call checks and copies
                labelset = by_table[table].copy()
                samples.append(make(Sample, (name, labelset, float(value), None, None, None)))
            else:
                folded.append(value)
        if folded:
            out.add(stat.spec, stat.fold(folded), OTHER)


def _samples_of(out: FamilySet, spec: MetricSpec) -> tuple[list[Sample], str]:
    """The sample list of `spec`'s family in `out`, and the samples' name."""
    family = _gauge_or_counter(out, spec)
    name = family.name + "_total" if isinstance(family, CounterMetricFamily) else family.name
    return family.samples, name


def _labels(spec: MetricSpec, out: FamilySet, tables: Iterable[str]) -> dict[str, dict[str, str]]:
    """Each table's labels for `spec`: the set's prefix, then the table."""
    prefix = out.prefix
    return {table: dict(zip(spec.labels, (*prefix, table), strict=True)) for table in tables}


def _gauge_or_counter(out: FamilySet, spec: MetricSpec) -> CounterMetricFamily | GaugeMetricFamily:
    """The family of `spec` in `out`, checked once so its samples are added directly."""
    family = out.get(spec)
    if not isinstance(family, CounterMetricFamily | GaugeMetricFamily):
        raise TypeError(f"{spec.name}: per-table values are gauges or counters")
    return family


def as_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
