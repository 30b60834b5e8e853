"""The database collector serves exactly the families its SPECS declare (name, type, help,
label names), on real PostgreSQL, MariaDB and SQLite, and every declared family is served by
at least one of them."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy

from collectors import database
from collectors.database import SPECS, Target
from collectors.specs import by_name
from tests.db_servers import private_mariadb, private_postgres
from tests.dbhelp import collect, engine_for, execute

DECLARED = by_name(SPECS)


@pytest.fixture(scope="module")
def served():
    """Families served per dialect, from servers with statement tracking on."""
    out = {}
    with (
        private_postgres("shared_preload_libraries=pg_stat_statements") as pg,
        private_mariadb("--performance-schema=ON") as my,
    ):
        execute(
            pg,
            "CREATE EXTENSION pg_stat_statements",
            "CREATE TABLE afx_db_specs (id int PRIMARY KEY)",  # an index: idx_scan not NULL
            "INSERT INTO afx_db_specs VALUES (1)",
        )
        with engine_for(pg, isolation_level="AUTOCOMMIT") as engine, engine.connect() as conn:
            conn.execute(sqlalchemy.text("VACUUM ANALYZE afx_db_specs"))
        execute(my, "CREATE TABLE afx_db_specs (id int)", "INSERT INTO afx_db_specs VALUES (1)")
        for dialect, url in (("postgresql", pg), ("mariadb", my)):
            collector = database.build(None, Target(name=dialect, url=url))
            try:
                collect(collector)  # the first has no transaction counters yet
                result = collect(collector)
                assert result.success, result.reason
                out[dialect] = result.families
            finally:
                collector.close()
    yield out


@pytest.fixture
def sqlite_families(tmp_path):
    path = tmp_path / "specs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE afx_db_specs (id int)")
    collector = database.build(None, Target(name="sqlite", url=f"sqlite:///{path}"))
    try:
        result = collect(collector)
        assert result.success
        return result.families
    finally:
        collector.close()


@pytest.fixture
def embedded_families(tmp_path):
    """The application's own statements observed on its engine, one of them failing."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    collector = database.from_engine(engine, "app")
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
            with pytest.raises(sqlalchemy.exc.DBAPIError):
                conn.execute(sqlalchemy.text("SELECT * FROM afx_db_missing"))
        result = collect(collector)
        assert result.success
        return result.families
    finally:
        collector.close()
        engine.dispose()


def exposed_name(family) -> str:
    return family.name + "_total" if family.type == "counter" else family.name


def check_against_specs(families) -> set[str]:
    names = set()
    for family in families:
        name = exposed_name(family)
        spec = DECLARED.get(name)
        assert spec is not None, f"{name} is served but not declared"
        assert family.type == spec.type.value, name
        assert family.documentation == spec.help, name
        for sample in family.samples:
            labels = tuple(k for k in sample.labels if k not in ("quantile", "le"))
            assert labels == spec.labels, (name, labels)
        names.add(name)
    return names


def test_each_dialect_serves_only_declared_families(served, sqlite_families, embedded_families):
    seen = set()
    for families in (*served.values(), sqlite_families, embedded_families):
        seen |= check_against_specs(families)
    assert seen == set(DECLARED), f"declared but never served: {set(DECLARED) - seen}"


def test_down_report_is_declared_too(tmp_path):
    collector = database.build(None, Target(name="gone", url=f"sqlite:///{tmp_path / 'no.db'}"))
    try:
        result = collect(collector)
    finally:
        collector.close()
    assert not result.success
    assert check_against_specs(result.families) >= {"db_up"}
