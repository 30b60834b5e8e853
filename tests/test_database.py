"""The database collector: config, SQLite, a database that is down, and secrets. The pool is
in test_database_pool.py, statements in test_database_statements.py, PostgreSQL and MariaDB
specifics in test_database_postgresql.py and test_database_mariadb.py."""

from __future__ import annotations

import logging
import socket
import sqlite3
import subprocess
import threading
import time

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from collectors import database
from collectors.database import Options, Target
from exporter.app import create_app
from exporter.config import load_config
from exporter.schema import ConfigError
from exporter.state import Exporter
from tests.dbhelp import collect, names, table_values, value
from tests.support import free_port, require_binary, scrape_headers, serve_app

PROMETHEUS_HEADERS = scrape_headers(4, text=True)
PASSWORD = "Pw-afx-d8c1e0-secret"


# -- config -----------------------------------------------------------------------------------


def config_problems(entries, env=None, base_dir=".") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config({"databases": entries}, env=env or {}, base_dir=base_dir)
    return info.value.problems


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://scott:" + PASSWORD + "@127.0.0.1/orcl", "unsupported dialect"),
        ("mssql+pyodbc://u:" + PASSWORD + "@127.0.0.1/x", "unsupported dialect"),
        ("not a url " + PASSWORD, "not a valid database URL"),
        ("postgresql://u:" + PASSWORD + "@127.0.0.1:notaport/app", "not a valid database URL"),
        ("postgresql+psycopg2://u:" + PASSWORD + "@127.0.0.1/app", "unsupported driver"),
        ("postgresql://u:" + PASSWORD + "@127.0.0.1", "names no database"),
        ("sqlite://", "in-memory"),
    ],
)
def test_bad_url_is_a_config_error_naming_the_key_without_the_url(url, message):
    problems = config_problems(
        [{"name": "ok", "url": "sqlite:////tmp/x.db"}, {"name": "bad", "url": url}]
    )
    assert len(problems) == 1
    assert problems[0].startswith("databases[1].url: ")
    assert message in problems[0]
    assert PASSWORD not in problems[0] and "127.0.0.1" not in problems[0]


def test_config_shape_password_from_env_and_file_and_overrides(tmp_path):
    secret_file = tmp_path / "db_password"
    secret_file.write_text(PASSWORD + "\n")
    config = load_config(
        {
            "collectors": {"database": {"table_limit": 7, "statement_timeout_seconds": 2}},
            "databases": [
                {
                    "name": "main",
                    "url": "postgresql+psycopg://app@127.0.0.1:5432/app",
                    "password_file": str(secret_file),
                },
                {
                    "name": "replica",
                    "url": "mysql://app@127.0.0.1/app",
                    "password": "${DB_PW}",
                    "timeout_seconds": 3,
                    "track_statements": False,
                    "table_limit": 3,
                    "connect_timeout_seconds": 1.5,
                },
            ],
        },
        env={"DB_PW": PASSWORD},
    )
    main, replica = config.targets["databases"]
    assert main.password.reveal() == PASSWORD and replica.password.reveal() == PASSWORD
    assert PASSWORD not in repr(main) and PASSWORD not in repr(replica)
    assert PASSWORD in config.secrets
    options = config.options("database")
    assert database.effective_options(options, main) == Options(7, True, 2.0)
    assert database.effective_options(options, replica) == Options(3, False, 2.0)
    assert replica.timeout_seconds == 3.0
    url = database.standalone_url(replica)
    assert url.drivername == "mysql+pymysql" and url.password == PASSWORD


def test_config_rejects_unknown_keys_and_both_password_sources(tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_text("x" * 8)
    problems = config_problems(
        [
            {"name": "a", "url": "sqlite:////tmp/a.db", "passwd": "x"},
            {
                "name": "b",
                "url": "sqlite:////tmp/b.db",
                "password": "y",
                "password_file": str(secret_file),
            },
            {"name": "c", "url": "sqlite:////tmp/c.db", "pool_size": 50},
        ]
    )
    assert any(p.startswith("databases[0].passwd: unknown key") for p in problems)
    assert any(p.startswith("databases[1].password_file: set either") for p in problems)
    assert any(p.startswith("databases[2].pool_size: must be 1-4") for p in problems)


# -- SQLite -----------------------------------------------------------------------------------


def test_sqlite_workload_moves_table_and_file_sizes(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE afx_db_items (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("CREATE TABLE afx_db_quiet (id INTEGER PRIMARY KEY)")
    collector = database.build(None, Target(name="lite", url=f"sqlite:///{path}"))
    try:
        before = collect(collector)
        assert before.success and value(before, "db_up", database="lite") == 1.0
        rows = 400
        with sqlite3.connect(path) as conn:
            conn.executemany(
                "INSERT INTO afx_db_items (body) VALUES (?)", [("x" * 200,) for _ in range(rows)]
            )
        after = collect(collector)
        sizes_before = table_values(before, "db_table_size_bytes")
        sizes_after = table_values(after, "db_table_size_bytes")
        assert sizes_after["afx_db_items"] >= sizes_before["afx_db_items"] + rows * 200
        assert sizes_after["afx_db_quiet"] == sizes_before["afx_db_quiet"]
        pages = value(after, "db_sqlite_pages", database="lite")
        page_size = value(after, "db_sqlite_page_size_bytes", database="lite")
        assert value(after, "db_size_bytes", database="lite") == pages * page_size
        assert value(after, "db_file_size_bytes", database="lite") == path.stat().st_size
        assert value(after, "db_sqlite_free_pages", database="lite") is not None
        assert any("SQLite does not track statements" in n for n in after.notes)
        assert "db_queries_total" not in names(after)
    finally:
        collector.close()


def test_sqlite_table_budget_folds_the_rest_under_other(tmp_path):
    path = tmp_path / "many.db"
    with sqlite3.connect(path) as conn:
        for i in range(5):
            conn.execute(f"CREATE TABLE afx_db_t{i} (body TEXT)")
            conn.executemany(f"INSERT INTO afx_db_t{i} VALUES (?)", [("y" * 100,)] * (i * 60))
    collector = database.build(Options(table_limit=2), Target(name="lite", url=f"sqlite:///{path}"))
    try:
        result = collect(collector)
        sizes = table_values(result, "db_table_size_bytes")
        assert set(sizes) == {"afx_db_t4", "afx_db_t3", "other"}
        assert result.series_dropped == 3
        with sqlite3.connect(path) as conn:
            total = conn.execute(
                "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'afx_db_t%'"
            ).fetchone()[0]
        assert sum(sizes.values()) == total
    finally:
        collector.close()


def test_sqlite_missing_file_is_down_and_not_created(tmp_path):
    path = tmp_path / "absent.db"
    collector = database.build(None, Target(name="gone", url=f"sqlite:///{path}"))
    try:
        result = collect(collector)
        assert not result.success
        assert value(result, "db_up", database="gone") == 0.0
        assert not path.exists()
    finally:
        collector.close()


# -- down, through the real app; secrets --------------------------------------------------------


def test_closed_port_gives_db_up_0_and_http_200_within_the_deadline(tmp_path, caplog):
    port = free_port()  # nothing listens there
    config = load_config(
        {
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "databases": [
                {
                    "name": "gone",
                    "url": f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{port}/app",
                },
                {
                    "name": "gone_my",
                    "url": f"mysql+pymysql://app@127.0.0.1:{port}/app",
                    "password": "${PW}",
                },
            ],
        },
        env={"PW": PASSWORD},
    )
    exporter = Exporter(config)
    caplog.set_level(logging.DEBUG)
    try:
        with serve_app(create_app(exporter)) as base:
            started = time.monotonic()
            response = httpx.get(f"{base}/metrics", headers=PROMETHEUS_HEADERS, timeout=30)
            elapsed = time.monotonic() - started
            landing = httpx.get(f"{base}/", timeout=10).text
            probe = httpx.get(f"{base}/probe?target=gone", timeout=30)
    finally:
        exporter.loaded.engine.close()
    assert response.status_code == 200 and probe.status_code == 200
    assert elapsed < 4 + 2  # the header's 4 s, with room for a loaded machine
    body = response.text
    assert 'db_up{database="gone"} 0.0' in body
    assert 'db_up{database="gone_my"} 0.0' in body
    assert 'afirgen_exporter_collector_success{collector="database",target="gone"} 0.0' in body
    assert "down (refused)" in landing
    for text in (body, landing, probe.text, caplog.text):
        assert PASSWORD not in text
    assert "collection failed collector=database target=gone" in caplog.text


def test_password_never_shown_when_the_server_answers(postgres_url, caplog):
    # trust auth ignores the password, so a real scrape runs with it in the URL
    url = postgres_url.replace("postgres@", f"postgres:{PASSWORD}@")
    config = load_config({"databases": [{"name": "pw", "url": url}]}, env={})
    exporter = Exporter(config)
    caplog.set_level(logging.DEBUG)
    try:
        with serve_app(create_app(exporter)) as base:
            body = httpx.get(f"{base}/metrics", headers=PROMETHEUS_HEADERS, timeout=30).text
            landing = httpx.get(f"{base}/", timeout=10).text
    finally:
        exporter.loaded.engine.close()
    assert 'db_up{database="pw"} 1.0' in body
    for text in (body, landing, caplog.text):
        assert PASSWORD not in text


def test_single_flight_concurrent_scrapes_share_one_connection(postgres_url):
    """Overlapping scrapes never stack queries: the pool of one never needs a second."""
    config = load_config({"databases": [{"name": "sf", "url": postgres_url}]}, env={})
    exporter = Exporter(config)
    collector = exporter.loaded.units[-1].collector
    errors: list[BaseException] = []
    try:
        with serve_app(create_app(exporter)) as base:

            def scrape() -> None:
                try:
                    r = httpx.get(f"{base}/metrics?collect[]=database", timeout=30)
                    assert 'db_up{database="sf"} 1.0' in r.text
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=scrape) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert not errors
        pool = collector.engine.pool
        assert pool.checkedout() == 0 and pool.overflow() <= 0
    finally:
        exporter.loaded.engine.close()


def test_several_databases_share_one_family_per_name_and_lint_clean(postgres_url, tmp_path):
    promtool = require_binary("promtool")
    lite = tmp_path / "lite.db"
    sqlite3.connect(lite).close()
    config = load_config(
        {
            "databases": [
                {"name": "one", "url": postgres_url},
                {"name": "two", "url": postgres_url},
                {"name": "lite", "url": f"sqlite:///{lite}"},
            ]
        },
        env={},
    )
    exporter = Exporter(config)
    try:
        with serve_app(create_app(exporter)) as base:
            # the first scrape has no transaction counters yet (they start at the second)
            httpx.get(f"{base}/metrics", headers=PROMETHEUS_HEADERS, timeout=30)
            text = httpx.get(f"{base}/metrics", headers=PROMETHEUS_HEADERS, timeout=30).text
            om = httpx.get(
                f"{base}/metrics",
                headers={"Accept": "application/openmetrics-text;version=1.0.0"},
                timeout=30,
            ).text
    finally:
        exporter.loaded.engine.close()
    families = list(text_string_to_metric_families(text))
    assert len({f.name for f in families}) == len(families)
    up = next(f for f in families if f.name == "db_up")
    assert {s.labels["database"] for s in up.samples} == {"one", "two", "lite"}
    assert len(list(openmetrics_families(om))) == len(families)
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    assert lint.returncode == 0, lint.stderr.decode() + lint.stdout.decode()


def test_silent_server_costs_at_most_the_deadline(caplog):
    """A server that accepts TCP and never answers: the scrape still answers on time."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes handshakes; nobody ever reads or writes
    port = silent.getsockname()[1]
    config = load_config(
        {
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "databases": [
                {"name": "silent_pg", "url": f"postgresql+psycopg://app@127.0.0.1:{port}/app"},
                {"name": "silent_my", "url": f"mysql+pymysql://app@127.0.0.1:{port}/app"},
            ],
        },
        env={},
    )
    exporter = Exporter(config)
    headers = scrape_headers(2, text=True)
    try:
        with serve_app(create_app(exporter)) as base:
            for _ in range(2):  # the second finds the first still in flight: no stacking
                started = time.monotonic()
                response = httpx.get(f"{base}/metrics", headers=headers, timeout=30)
                elapsed = time.monotonic() - started
                assert response.status_code == 200 and elapsed < 2 + 2
                assert 'db_up{database="silent_pg"} 0.0' in response.text
                assert 'db_up{database="silent_my"} 0.0' in response.text
    finally:
        exporter.loaded.engine.close()
        silent.close()
    assert "reason=timeout" in caplog.text


def test_a_table_named_other_never_duplicates_the_other_series(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        for table in ("other", "afx_db_a", "afx_db_b", "afx_db_c"):
            conn.execute(f'CREATE TABLE "{table}" (body TEXT)')
    collector = database.build(Options(table_limit=1), Target(name="o", url=f"sqlite:///{path}"))
    try:
        result = collect(collector)
    finally:
        collector.close()
    labels = [
        s.labels["table"]
        for f in result.families
        for s in f.samples
        if s.name == "db_table_size_bytes"
    ]
    assert sorted(labels) == sorted(set(labels)) and "other" in labels and len(labels) == 2
