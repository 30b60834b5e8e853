"""Every metric a dashboard or a rule names is one the exporter really emits.

The PromQL of every dashboard panel, dashboard variable and rule is parsed with promql-parser
(after Grafana's macros are replaced by durations) and every vector selector's metric name is
collected. Each must be a sample name of a real scrape of the exporter with every collector
configured against the machine's services (plus the API metrics of an embedded app), the
output of a recording rule, or a series Prometheus itself makes (`up`, `scrape_*`, `ALERTS`).
Redis and RQ run on a private redis-server (the shared one holds other people's data); the
RabbitMQ queue is named for this run and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml

from alerts import build as rules_build
from tests.support import (
    ROOT,
    Samples,
    exporter_process,
    require_service,
    scrape_url,
    serve_app,
    wait_until,
)

GRAFANA_MACROS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
}
#: Series Prometheus makes itself, not the exporter.
PROMETHEUS_MADE = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}
PREFIX = "afx_e2e_"
#: Part of the RabbitMQ queue's name, so concurrent runs on the shared broker never share it.
RUN = uuid.uuid4().hex[:8]


# -- what the dashboards and rules name -------------------------------------------------------


def replace_macros(expr: str) -> str:
    for macro, duration in GRAFANA_MACROS.items():
        expr = expr.replace(macro, duration)
    return re.sub(r"\$\{?__\w+\}?", "5m", expr)


def selectors(expr: str) -> list[Any]:
    """Every vector selector of a PromQL expression."""
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(replace_macros(expr)), visit)
    return found


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel query and every `label_values` variable query."""
    for path in sorted((ROOT / "grafana").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.stem}: {panel['title']}", target["expr"]
        for variable in dashboard["templating"]["list"]:
            query = variable.get("query")
            if variable["type"] == "query":
                match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
                assert match, f"{path.stem}: variable {variable['name']}: {query}"
                yield f"{path.stem}: ${variable['name']}", match.group(1)


def rule_files() -> Iterator[dict[str, Any]]:
    for name in ("afirgen.rules.yml", "afirgen.alerts.yml"):
        for group in yaml.safe_load((ROOT / "alerts" / name).read_text())["groups"]:
            yield from group["rules"]


def rule_expressions() -> Iterator[tuple[str, str]]:
    for rule in rule_files():
        yield rule.get("alert") or rule["record"], rule["expr"]


def recorded() -> set[str]:
    return {rule["record"] for rule in rule_files() if "record" in rule}


def referenced() -> dict[str, set[str]]:
    """metric name -> where it is used."""
    used: dict[str, set[str]] = {}
    for where, expr in [*dashboard_expressions(), *rule_expressions()]:
        for selector in selectors(expr):
            assert selector.name, f"{where}: a selector without a metric name: {expr}"
            used.setdefault(selector.name, set()).add(where)
    return used


def test_every_expression_parses_and_names_metrics():
    used = referenced()
    assert len(used) > 50
    for name in used:
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name), name


def test_every_selector_is_narrowed_to_the_exporters_jobs():
    """Dashboards filter by `$job`, rules by the rules' SELECTOR: no stray series get in."""
    for where, expr in dashboard_expressions():
        if where.endswith(": $job"):
            continue  # the variable that lists the jobs
        for selector in selectors(expr):
            if selector.name == "ALERTS":
                continue
            matchers = {(m.name, m.value) for m in selector.matchers.matchers}
            assert ("job", "$job") in matchers, (where, selector.name)
    job_regex = re.search(r'job=~"([^"]+)"', rules_build.SELECTOR)
    assert job_regex
    records = recorded()
    for where, expr in rule_expressions():
        for selector in selectors(expr):
            if selector.name in records:
                continue  # already narrowed when it was recorded
            matchers = {(m.name, m.value) for m in selector.matchers.matchers}
            assert ("job", job_regex.group(1)) in matchers, (where, selector.name)


# -- what the exporter emits ------------------------------------------------------------------


def sample_names(*scrapes: Samples) -> set[str]:
    return {name for samples in scrapes for name, _ in samples}


@contextlib.contextmanager
def statement_tracking_postgres() -> Iterator[str]:
    """A private PostgreSQL with pg_stat_statements, with a table and a known workload."""
    import sqlalchemy

    from tests.db_servers import private_postgres

    with private_postgres("shared_preload_libraries=pg_stat_statements") as url:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE EXTENSION pg_stat_statements"))
            conn.execute(sqlalchemy.text(f"CREATE TABLE {PREFIX}firs (id int, body text)"))
            conn.execute(sqlalchemy.text(f"INSERT INTO {PREFIX}firs VALUES (1, 'a'), (2, 'b')"))
            conn.execute(sqlalchemy.text(f"UPDATE {PREFIX}firs SET body = 'c' WHERE id = 1"))
            conn.execute(sqlalchemy.text(f"DELETE FROM {PREFIX}firs WHERE id = 2"))
            conn.execute(sqlalchemy.text(f"SELECT * FROM {PREFIX}firs"))
        engine.dispose()
        yield url


@contextlib.contextmanager
def redis_workload(directory: Path) -> Iterator[str]:
    """A private redis-server with hits, misses and an RQ queue holding waiting jobs."""
    import redis as redis_py
    from rq import Queue

    from tests.redis_server import private_redis

    with private_redis(directory) as server:
        client = redis_py.Redis.from_url(server.url)
        try:
            client.set(f"{PREFIX}key", "v")
            client.get(f"{PREFIX}key")
            client.get(f"{PREFIX}missing")
            waiting = Queue(f"{PREFIX}waiting", connection=client)
            waiting.enqueue("tests.tq_rq_jobs.ok", 1)
            done = Queue(f"{PREFIX}done", connection=client)
            done.enqueue("tests.tq_rq_jobs.ok", 2)
            done.enqueue("tests.tq_rq_jobs.boom")
            yield server.url
        finally:
            client.close()


@contextlib.contextmanager
def rabbitmq_queue() -> Iterator[str]:
    import amqp

    name = f"{PREFIX}{RUN}_tasks"
    with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
        channel = conn.channel()
        channel.queue_declare(name, durable=False, auto_delete=False)
        try:
            yield name
        finally:
            channel.queue_delete(name)


@contextlib.contextmanager
def embedded_app_metrics(directory: Path) -> Iterator[Samples]:
    """An app with the exporter embedded, after a few requests: its /prometheus/metrics samples.

    Its engine (SQLite) runs one statement that works and one that fails, so the statement
    families observed on the app's engine are there too."""
    import sqlalchemy
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from exporter import embed

    engine = sqlalchemy.create_engine(f"sqlite:///{directory / 'embedded.db'}")

    def fir(request: Request) -> JSONResponse:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
            with contextlib.suppress(sqlalchemy.exc.OperationalError):
                conn.execute(sqlalchemy.text(f"SELECT * FROM {PREFIX}missing"))
        return JSONResponse({"id": request.path_params["fir_id"]})

    app = Starlette(routes=[Route("/api/fir/{fir_id}", fir)])
    embed(app, engine=engine)
    try:
        with serve_app(app) as url:
            for fir_id in (1, 2):
                assert httpx.get(f"{url}/api/fir/{fir_id}").status_code == 200
            yield scrape_url(f"{url}/prometheus/metrics")
    finally:
        engine.dispose()


def after_worker_ran(samples: Samples) -> Samples | None:
    """The scrape once the RQ worker is registered and has run both jobs (one fails)."""
    jobs = {
        (name, dict(labels).get("status")): value
        for (name, labels), value in samples.items()
        if dict(labels).get("backend") == "jobs"
    }
    done = all(
        jobs.get(("background_tasks_processed_total", status), 0) >= 1
        for status in ("success", "failure")
    )
    return samples if done and ("background_tasks_workers", None) in jobs else None


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    require_service("PostgreSQL", 5432)
    require_service("MariaDB", 3306)
    require_service("RabbitMQ", 5672)
    from tests.model_server_apps import Behaviour, make_app
    from tests.tq_support import worker_process

    tmp = tmp_path_factory.mktemp("promql")
    with contextlib.ExitStack() as stack:
        private_pg = stack.enter_context(statement_tracking_postgres())
        redis_url = stack.enter_context(redis_workload(tmp))
        queue = stack.enter_context(rabbitmq_queue())
        model_url = stack.enter_context(serve_app(make_app("kserve", Behaviour())))
        engine = Behaviour()  # a vLLM whose metrics page has every inference family
        engine.traffic.serve("fir-summarizer", success=5, failure=1)
        engine_url = stack.enter_context(serve_app(make_app("vllm", engine)))
        api_samples = stack.enter_context(embedded_app_metrics(tmp))
        sqlite = tmp / "app.db"
        with contextlib.closing(sqlite3.connect(sqlite)) as db:
            db.execute(f"CREATE TABLE {PREFIX}firs (id INTEGER PRIMARY KEY, body TEXT)")
            db.commit()
        config = {
            "databases": [
                {"name": "main", "url": private_pg},
                {"name": "shared", "url": "postgresql+psycopg://postgres@127.0.0.1:5432/test"},
                {"name": "mariadb", "url": "mysql+pymysql://root@127.0.0.1:3306/test"},
                {"name": "local", "url": f"sqlite:///{sqlite}"},
            ],
            "redis": [{"name": "cache", "url": redis_url}],
            "model_servers": [
                {"name": "llm", "kind": "kserve", "url": model_url, "models": ["fir-summarizer"]},
                {"name": "vllm", "kind": "vllm", "url": engine_url, "models": ["fir-summarizer"]},
            ],
            "task_queues": [
                {
                    "name": "jobs",
                    "kind": "rq",
                    "url": redis_url,
                    "queues": [f"{PREFIX}waiting", f"{PREFIX}done"],
                },
                # Celery on the private Redis: its event receiver's families (no worker needed)
                {"name": "celery", "kind": "celery", "url": redis_url, "queues": [f"{PREFIX}c"]},
                {
                    "name": "broker",
                    "kind": "rabbitmq",
                    "url": "amqp://guest:guest@127.0.0.1:5672/",
                    "queues": [queue],
                },
            ],
        }
        config_file = tmp / "exporter.yml"
        config_file.write_text(yaml.safe_dump(config))
        exporter = stack.enter_context(exporter_process(config_file))
        scrape_url(f"{exporter}/metrics")  # RQ's registries as they are: jobs finished later count
        worker = ["rq.cli", "worker", "-u", redis_url, f"{PREFIX}done", "--name", "afx_e2e_rq"]
        stack.enter_context(worker_process(worker))
        # the worker has run both jobs: its record carries the processed counts
        worked = wait_until(
            lambda: after_worker_ran(scrape_url(f"{exporter}/metrics")),
            timeout=40,
            what="the RQ worker's processed counts in a scrape",
        )
        again = scrape_url(f"{exporter}/metrics")  # a second scrape: probe histograms have data
        return sample_names(worked, again, api_samples)


def test_every_named_metric_is_emitted_or_recorded(emitted: set[str]):
    known = emitted | recorded() | PROMETHEUS_MADE
    missing = {name: sorted(where) for name, where in referenced().items() if name not in known}
    assert missing == {}, "named in dashboards or rules, but not emitted:\n" + "\n".join(
        f"  {name}: {', '.join(where)}" for name, where in sorted(missing.items())
    )


def test_the_check_would_catch_a_misspelt_metric(emitted: set[str]):
    assert "cache_up" in emitted
    assert "cache_upp" not in emitted | recorded() | PROMETHEUS_MADE


def test_scrape_covered_every_collector(emitted: set[str]):
    """Guard against a silently empty scrape: each area's up gauge was there."""
    for name in ("db_up", "cache_up", "model_server_up", "background_tasks_up", "system_cpus"):
        assert name in emitted, name
    assert "api_requests_total" in emitted
