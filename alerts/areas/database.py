"""Databases: reachability, the pool, server connections, deadlocks, long transactions."""

from __future__ import annotations

from alerts.rules import Alert, Area, Record, selector
from alerts.thresholds import (
    CONNECTIONS_NEAR_MAX_FOR,
    CONNECTIONS_NEAR_MAX_RATIO,
    DATABASE_DOWN_FOR,
    DEADLOCK_FOR,
    DEADLOCK_WINDOW,
    LONG_TRANSACTION_FOR,
    LONG_TRANSACTION_SECONDS,
    POOL_SATURATION_FOR,
    POOL_SATURATION_RATIO,
)

AREA = Area(
    "database",
    records=(
        # the backend's spec query, as a ratio: (size - available) / size, where available is
        # capacity minus checked out, so an idle pool reads 0 whatever it holds open
        Record(
            "job_database:db_connection_pool_checked_out:ratio",
            f"(db_connection_pool_size{selector()}\n- on (job, instance, database)\n"
            f"db_connection_pool_available{selector()})\n/ on (job, instance, database)\n"
            f"(db_connection_pool_size{selector()} > 0)",
        ),
        Record(
            "job_database:db_connections:ratio",
            f"sum by (job, instance, database) (db_connections{selector()})\n"
            f"/ on (job, instance, database)\n(db_connections_max{selector()} > 0)",
        ),
    ),
    alerts=(
        Alert(
            "AfirgenDatabaseDown",
            f"db_up{selector()} == 0",
            DATABASE_DOWN_FOR,
            "critical",
            "A database cannot be reached.",
            "Database {{ $labels.database }} (exporter {{ $labels.instance }}) has not "
            f"answered for {DATABASE_DOWN_FOR}.",
        ),
        Alert(
            "AfirgenDatabasePoolSaturated",
            f"job_database:db_connection_pool_checked_out:ratio > {POOL_SATURATION_RATIO}",
            POOL_SATURATION_FOR,
            "warning",
            "The SQLAlchemy pool is nearly exhausted.",
            "{{ $value | humanizePercentage }} of the connection pool of database "
            "{{ $labels.database }} on {{ $labels.instance }} is checked out; requests wait "
            "for a connection.",
        ),
        Alert(
            "AfirgenDatabaseConnectionsNearMax",
            f"job_database:db_connections:ratio > {CONNECTIONS_NEAR_MAX_RATIO}",
            CONNECTIONS_NEAR_MAX_FOR,
            "warning",
            "The database server is close to its connection limit.",
            "Database {{ $labels.database }} uses {{ $value | humanizePercentage }} of its "
            "max_connections.",
        ),
        Alert(
            "AfirgenDatabaseDeadlocks",
            f"increase(db_deadlocks_total{selector()}[{DEADLOCK_WINDOW}]) > 0",
            DEADLOCK_FOR,
            "warning",
            "The database detected deadlocks.",
            "Database {{ $labels.database }} counted {{ $value | humanize }} deadlocks in the "
            f"last {DEADLOCK_WINDOW}.",
        ),
        Alert(
            "AfirgenDatabaseLongTransaction",
            f"db_longest_transaction_seconds{selector()} > {LONG_TRANSACTION_SECONDS}",
            LONG_TRANSACTION_FOR,
            "warning",
            "A database transaction has been open for a long time.",
            "The oldest open transaction on database {{ $labels.database }} is "
            "{{ $value | humanizeDuration }} old.",
        ),
    ),
)
