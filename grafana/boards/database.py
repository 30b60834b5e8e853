"""The Database dashboard: the SQLAlchemy pool, the server's connections, transactions, tables."""

from __future__ import annotations

from alerts.thresholds import POOL_SATURATION_RATIO
from grafana.panels import (
    RATE,
    TARGET,
    Board,
    Row,
    area_variable,
    instance_variable,
    job_variable,
    query,
    red_above,
    stat_panel,
    timeseries_panel,
)

DB = f'{TARGET}, database=~"$database"'

BOARD = Board(
    "afirgen-database",
    "afirgen / Database",
    "SQLAlchemy pools (read from the engine at scrape time) and the database servers' own "
    "statistics: connections, transactions, deadlocks, sizes, rows and statements.",
    [job_variable(), instance_variable("db_up"), area_variable("database", "Database", "db_up")],
    [
        Row(
            "Availability and pool",
            [
                stat_panel(
                    "Database up",
                    "1 when the exporter could query the database in the last scrape.",
                    "none",
                    query(f"db_up{{{DB}}}", "{{database}}"),
                    updown=True,
                ),
                stat_panel(
                    "Pool utilisation",
                    "(size - available) / size: connections checked out over pool capacity "
                    "(pool size + max overflow); 0 when idle.",
                    "percentunit",
                    query(f"max(job_database:db_connection_pool_checked_out:ratio{{{DB}}})"),
                    max=1,
                    steps=red_above(POOL_SATURATION_RATIO),
                ),
                timeseries_panel(
                    "Ping",
                    "Round trip of a trivial query from the exporter.",
                    "s",
                    query(f"db_ping_duration_seconds{{{DB}}}", "{{database}}"),
                    width=12,
                ),
                timeseries_panel(
                    "Pool connections",
                    "The application pool: capacity, checked out, available (capacity minus "
                    "checked out), idle connections held open in the pool, overflow.",
                    "short",
                    query(f"db_connection_pool_size{{{DB}}}", "{{database}} capacity"),
                    query(f"db_connection_pool_checked_out{{{DB}}}", "{{database}} checked out"),
                    query(f"db_connection_pool_available{{{DB}}}", "{{database}} available"),
                    query(f"db_connection_pool_idle{{{DB}}}", "{{database}} idle"),
                    query(f"db_connection_pool_overflow{{{DB}}}", "{{database}} overflow"),
                ),
                timeseries_panel(
                    "Pool utilisation",
                    "(size - available) / size (recording rule); at 100% requests wait.",
                    "percentunit",
                    query(
                        f"job_database:db_connection_pool_checked_out:ratio{{{DB}}}",
                        "{{database}}",
                    ),
                    max=1,
                ),
            ],
        ),
        Row(
            "Server",
            [
                timeseries_panel(
                    "Server connections by state",
                    "Connections on the server (all clients, not only this app) by state.",
                    "short",
                    query(f"db_connections{{{DB}}}", "{{database}} {{state}}"),
                    query(f"db_connections_max{{{DB}}}", "{{database}} max"),
                ),
                timeseries_panel(
                    "Server connections used",
                    "Connections over the server's maximum (recording rule).",
                    "percentunit",
                    query(f"job_database:db_connections:ratio{{{DB}}}", "{{database}}"),
                    max=1,
                ),
                timeseries_panel(
                    "Transactions",
                    "Commits and rollbacks per second.",
                    "ops",
                    query(
                        f"rate(db_transactions_committed_total{{{DB}}}[{RATE}])",
                        "{{database}} commit",
                    ),
                    query(
                        f"rate(db_transactions_rolled_back_total{{{DB}}}[{RATE}])",
                        "{{database}} rollback",
                    ),
                ),
                timeseries_panel(
                    "Deadlocks",
                    "Deadlocks the server detected, per interval.",
                    "short",
                    query(f"increase(db_deadlocks_total{{{DB}}}[{RATE}])", "{{database}}"),
                ),
                timeseries_panel(
                    "Longest transaction",
                    "Age of the oldest open transaction; long ones hold locks and block vacuum.",
                    "s",
                    query(f"db_longest_transaction_seconds{{{DB}}}", "{{database}}"),
                ),
                timeseries_panel(
                    "Database size",
                    "Size of the database on disk.",
                    "bytes",
                    query(f"db_size_bytes{{{DB}}}", "{{database}}"),
                ),
            ],
        ),
        Row(
            "Tables and statements",
            [
                timeseries_panel(
                    "Rows per second by table",
                    "Rows read, inserted, updated and deleted per second (top tables; the "
                    "rest under 'other').",
                    "rowsps",
                    *(
                        query(
                            f"topk(5, sum by (database, table) "
                            f"(rate(db_table_rows_{op}_total{{{DB}}}[{RATE}])))",
                            "{{database}} {{table}} " + op,
                        )
                        for op in ("read", "inserted", "updated", "deleted")
                    ),
                ),
                timeseries_panel(
                    "Dead rows",
                    "Estimated dead rows per table (PostgreSQL): what vacuum has yet to clean.",
                    "short",
                    query(f"topk(10, db_table_dead_rows{{{DB}}})", "{{database}} {{table}}"),
                ),
                timeseries_panel(
                    "Statements per second",
                    "Statements by type and main table: the app's own (embedded), else where "
                    "the server tracks statements (pg_stat_statements, performance_schema).",
                    "ops",
                    query(
                        f"sum by (database, type, table) (rate(db_queries_total{{{DB}}}[{RATE}]))",
                        "{{database}} {{type}} {{table}}",
                    ),
                ),
                timeseries_panel(
                    "Mean statement time",
                    "Statement time over statement count, by type.",
                    "s",
                    query(
                        f"sum by (database, type) "
                        f"(rate(db_query_duration_seconds_sum{{{DB}}}[{RATE}]))\n"
                        f"/ sum by (database, type) "
                        f"(rate(db_query_duration_seconds_count{{{DB}}}[{RATE}]))",
                        "{{database}} {{type}}",
                    ),
                ),
                timeseries_panel(
                    "Statement time p95",
                    "95th percentile of the app's own statement durations, by type (embedded "
                    "mode: the server's statistics have no buckets).",
                    "s",
                    query(
                        f"histogram_quantile(0.95, sum by (database, type, le) "
                        f"(rate(db_query_duration_seconds_bucket{{{DB}}}[{RATE}])))",
                        "{{database}} {{type}}",
                    ),
                ),
                timeseries_panel(
                    "Failed statements per second",
                    "The app's statements that raised an error, by type and table (embedded).",
                    "ops",
                    query(
                        f"sum by (database, type, table) "
                        f"(rate(db_query_errors_total{{{DB}}}[{RATE}]))",
                        "{{database}} {{type}} {{table}}",
                    ),
                ),
            ],
        ),
    ],
)
