"""Embedded mode end to end: real apps served by uvicorn on loopback, scraped over HTTP."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Host, Mount, Route

from exporter import embed
from exporter.api_metrics import UNMATCHED, route_template
from tests.support import ROOT, free_port, serve_app, wait_until

TABLE = "afx_embed_fir"


def scrape(url: str, path: str = "/prometheus/metrics") -> dict[tuple[str, frozenset], float]:
    """Every sample of one scrape, keyed by name and label set."""
    response = httpx.get(url + path, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def api_endpoints(samples: dict) -> set[str]:
    return {
        dict(labels)["endpoint"]
        for name, labels in samples
        if name == "api_requests_total" and "endpoint" in dict(labels)
    }


class NewFir(BaseModel):
    title: str


def fir_app(engine) -> tuple[FastAPI, dict[str, threading.Event]]:
    """A small FIR backend; events let a test hold a request open as long as it needs."""
    events = {"release_pool": threading.Event(), "release_stream": threading.Event()}
    app = FastAPI()

    @app.get("/api/fir/{fir_id}")
    def get_fir(fir_id: int) -> dict:
        with engine.connect() as conn:
            title = conn.execute(
                text(f"SELECT title FROM {TABLE} WHERE id = :id"), {"id": fir_id}
            ).scalar()
        if title is None:
            raise HTTPException(status_code=404, detail="no such FIR")
        return {"id": fir_id, "title": title}

    @app.post("/api/fir", status_code=201)
    def create_fir(fir: NewFir) -> dict:
        try:
            with engine.begin() as conn:
                fir_id = conn.execute(
                    text(f"INSERT INTO {TABLE} (title) VALUES (:title) RETURNING id"),
                    {"title": fir.title},
                ).scalar_one()
        except IntegrityError:
            raise HTTPException(status_code=409, detail="already filed") from None
        return {"id": fir_id, "title": fir.title}

    @app.get("/api/boom")
    async def boom() -> dict:
        raise RuntimeError("the handler failed")

    @app.get("/api/stream")
    def stream() -> StreamingResponse:
        def chunks():
            yield b"first\n"
            events["release_stream"].wait(timeout=30)
            yield b"last\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/api/stream/broken")
    def broken_stream() -> StreamingResponse:
        def chunks():
            yield b"first\n"
            raise RuntimeError("the stream failed half way")

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/api/pool/hold")
    def hold_two_connections() -> dict:
        with engine.connect() as first, engine.connect() as second:
            first.exec_driver_sql("SELECT 1")
            second.exec_driver_sql("SELECT 1")
            events["release_pool"].wait(timeout=30)
        return {"held": 2}

    return app, events


@pytest.fixture
def engine(postgres_url):
    engine = create_engine(postgres_url, pool_size=5, max_overflow=0)
    with engine.begin() as conn:
        conn.execute(
            text(f"CREATE TABLE IF NOT EXISTS {TABLE} (id serial PRIMARY KEY, title text UNIQUE)")
        )
        conn.execute(text(f"TRUNCATE {TABLE} RESTART IDENTITY"))
    yield engine
    engine.dispose()


@pytest.fixture
def served_fir_app(engine):
    app, events = fir_app(engine)
    embed(app, engine=engine, config=_no_host_config())
    with serve_app(app) as url:
        try:
            yield url, events
        finally:  # let any request a failed test left waiting finish before the server stops
            for event in events.values():
                event.set()


def _no_host_config():
    """Only what the test looks at: the host collectors are covered by their own tests."""
    from exporter.config import load_config

    return load_config({"collectors": {"system": {"enabled": False}}})


def test_templated_route_counts_under_its_template(served_fir_app):
    url, _ = served_fir_app
    sent = 7
    with httpx.Client() as client:
        ids = [
            client.post(f"{url}/api/fir", json={"title": f"report {n}"}).json()["id"]
            for n in range(sent)
        ]
        for fir_id in ids:
            assert client.get(f"{url}/api/fir/{fir_id}").status_code == 200
    samples = scrape(url)
    assert (
        value(
            samples, "api_requests_total", endpoint="/api/fir/{fir_id}", method="GET", status="200"
        )
        == sent
    )
    assert (
        value(
            samples,
            "api_request_duration_seconds_count",
            endpoint="/api/fir/{fir_id}",
            method="GET",
        )
        == sent
    )
    assert (
        value(samples, "api_requests_in_progress", endpoint="/api/fir/{fir_id}", method="GET") == 0
    )
    assert not any(e.startswith("/api/fir/") and "{" not in e for e in api_endpoints(samples))


def test_post_status_codes_are_the_ones_answered(served_fir_app):
    url, _ = served_fir_app
    with httpx.Client() as client:
        codes = [
            client.post(f"{url}/api/fir", json={"title": "stolen bicycle"}).status_code,
            client.post(f"{url}/api/fir", json={"title": "stolen car"}).status_code,
            client.post(f"{url}/api/fir", json={"title": "stolen bicycle"}).status_code,
            client.post(f"{url}/api/fir", json={"wrong": 1}).status_code,
            client.get(f"{url}/api/fir/404").status_code,
        ]
    assert codes == [201, 201, 409, 422, 404]
    samples = scrape(url)
    for status, count in (("201", 2), ("409", 1), ("422", 1)):
        labels = {"endpoint": "/api/fir", "method": "POST", "status": status}
        assert value(samples, "api_requests_total", **labels) == count, status
    labels = {"endpoint": "/api/fir/{fir_id}", "method": "GET", "status": "404"}
    assert value(samples, "api_requests_total", **labels) == 1


def test_unmatched_requests_share_one_endpoint_and_scrapes_are_not_counted(served_fir_app):
    url, _ = served_fir_app
    with httpx.Client() as client:
        for path in ("/nothing/here", "/nothing/else", "/api/firs/1"):
            assert client.get(url + path).status_code == 404
        for _ in range(3):
            assert client.get(f"{url}/prometheus/metrics").status_code == 200
        assert client.get(f"{url}/prometheus/-/healthy").status_code == 200
    samples = scrape(url)
    labels = {"endpoint": UNMATCHED, "method": "GET", "status": "404"}
    assert value(samples, "api_requests_total", **labels) == 3
    assert api_endpoints(samples) == {UNMATCHED}


def test_an_exception_counts_as_500(served_fir_app):
    url, _ = served_fir_app
    assert httpx.get(f"{url}/api/boom").status_code == 500
    samples = scrape(url)
    labels = {"endpoint": "/api/boom", "method": "GET", "status": "500"}
    assert value(samples, "api_requests_total", **labels) == 1
    assert value(samples, "api_requests_in_progress", endpoint="/api/boom", method="GET") == 0


def test_a_stream_that_fails_half_way_counts_as_500(served_fir_app):
    url, _ = served_fir_app
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{url}/api/stream/broken")
    samples = scrape(url)
    labels = {"endpoint": "/api/stream/broken", "method": "GET"}
    assert value(samples, "api_requests_total", status="500", **labels) == 1
    assert value(samples, "api_requests_total", status="200", **labels) is None
    assert value(samples, "api_requests_in_progress", **labels) == 0


def test_a_streaming_response_is_timed_to_the_end_of_its_body(served_fir_app):
    url, events = served_fir_app
    labels = {"endpoint": "/api/stream", "method": "GET"}
    with httpx.Client(timeout=30) as client, client.stream("GET", f"{url}/api/stream") as response:
        chunks = response.iter_bytes()
        assert next(chunks).startswith(b"first")
        held_from = time.monotonic()
        # The body is still open: the request is in progress and not yet counted.
        samples = scrape(url)
        assert value(samples, "api_requests_in_progress", **labels) == 1
        assert not value(samples, "api_request_duration_seconds_count", **labels)
        wait_until(lambda: time.monotonic() - held_from > 0.3, what="the stream to be held")
        held = time.monotonic() - held_from
        events["release_stream"].set()
        assert b"".join(chunks).endswith(b"last\n")
    samples = scrape(url)
    assert value(samples, "api_request_duration_seconds_count", **labels) == 1
    # The server's clock ran at least from before the first chunk to after the release.
    assert value(samples, "api_request_duration_seconds_sum", **labels) >= held
    assert value(samples, "api_requests_in_progress", **labels) == 0


def test_pool_metrics_describe_the_apps_own_engine(served_fir_app):
    url, events = served_fir_app
    pool = {"database": "app"}
    with concurrent.futures.ThreadPoolExecutor(1) as pool_user:
        held = pool_user.submit(httpx.get, f"{url}/api/pool/hold", timeout=30)
        try:
            wait_until(
                lambda: value(scrape(url), "db_connection_pool_checked_out", **pool) == 2,
                what="two connections checked out",
            )
            samples = scrape(url)
            assert value(samples, "db_connection_pool_size", **pool) == 5
            labels = {"endpoint": "/api/pool/hold", "method": "GET"}
            assert value(samples, "api_requests_in_progress", **labels) == 1
        finally:
            events["release_pool"].set()
        assert held.result().status_code == 200
        assert value(scrape(url), "db_connection_pool_checked_out", **pool) == 0


def test_pool_formula_reads_0_idle_and_the_held_share_while_a_request_holds(served_fir_app):
    url, events = served_fir_app
    pool = {"database": "app"}

    def formula(samples: dict) -> float:
        size = value(samples, "db_connection_pool_size", **pool)
        return (size - value(samples, "db_connection_pool_available", **pool)) / size * 100

    assert formula(scrape(url)) == 0
    with concurrent.futures.ThreadPoolExecutor(1) as pool_user:
        held = pool_user.submit(httpx.get, f"{url}/api/pool/hold", timeout=30)
        try:
            wait_until(lambda: formula(scrape(url)) == 2 / 5 * 100, what="40% in use")
        finally:
            events["release_pool"].set()
        assert held.result().status_code == 200
    samples = scrape(url)
    assert formula(samples) == 0 and value(samples, "db_connection_pool_idle", **pool) >= 2


def test_statements_of_the_apps_requests_are_counted_exactly(served_fir_app):
    url, _ = served_fir_app
    posts, gets, missing = 4, 9, 3
    with httpx.Client() as client:
        ids = [
            client.post(f"{url}/api/fir", json={"title": f"case {n}"}).json()["id"]
            for n in range(posts)
        ]
        assert client.post(f"{url}/api/fir", json={"title": "case 0"}).status_code == 409
        for n in range(gets):
            assert client.get(f"{url}/api/fir/{ids[n % posts]}").status_code == 200
        for n in range(missing):
            assert client.get(f"{url}/api/fir/{10_000 + n}").status_code == 404
    for _ in range(2):  # scrapes in between change nothing: the exporter's are not counted
        samples = scrape(url)
        of = {"database": "app", "table": TABLE}
        assert value(samples, "db_queries_total", type="insert", **of) == posts + 1
        assert value(samples, "db_queries_total", type="select", **of) == gets + missing
        assert value(samples, "db_query_errors_total", type="insert", **of) == 1  # the 409
        assert value(samples, "db_query_duration_seconds_count", type="select", **of) == (
            gets + missing
        )


def test_track_statements_false_in_the_config_turns_the_observer_off(engine):
    from exporter.config import load_config

    app, _ = fir_app(engine)
    config = load_config(
        {"collectors": {"system": {"enabled": False}, "database": {"track_statements": False}}}
    )
    embed(app, engine=engine, config=config)
    with serve_app(app) as url:
        assert httpx.get(f"{url}/api/fir/1").status_code == 404
        samples = scrape(url)
    assert value(samples, "db_connection_pool_size", database="app") == 5
    assert not [name for name, _ in samples if name.startswith("db_quer")]


def test_a_plain_starlette_app_with_mounts_and_its_own_lifespan():
    lifecycle: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        lifecycle.append("app started")
        yield
        lifecycle.append("app stopped")

    async def item(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.path_params))

    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", item),
            Mount("/v1", routes=[Route("/users/{user_id}", item)]),
        ],
        lifespan=lifespan,
    )
    exporter = embed(app, config=_no_host_config(), path="/ops/prometheus/")
    closed: list[bool] = []
    original_close = exporter.aclose

    async def recording_close() -> None:
        closed.append("app stopped" in lifecycle)
        await original_close()

    exporter.aclose = recording_close  # type: ignore[method-assign]
    with serve_app(app, lifespan="on") as url:
        assert lifecycle == ["app started"]
        with httpx.Client() as client:
            assert client.get(f"{url}/items/3").status_code == 200
            assert client.get(f"{url}/v1/users/ada").status_code == 200
            assert client.get(f"{url}/v1/users/ada/extra").status_code == 404
            assert client.delete(f"{url}/items/3").status_code == 405
        samples = scrape(url, "/ops/prometheus/metrics")
    assert (
        value(
            samples, "api_requests_total", endpoint="/items/{item_id}", method="GET", status="200"
        )
        == 1
    )
    assert (
        value(
            samples,
            "api_requests_total",
            endpoint="/v1/users/{user_id}",
            method="GET",
            status="200",
        )
        == 1
    )
    assert value(samples, "api_requests_total", endpoint=UNMATCHED, method="GET", status="404") == 1
    assert (
        value(
            samples,
            "api_requests_total",
            endpoint="/items/{item_id}",
            method="DELETE",
            status="405",
        )
        == 1
    )
    # The app's own lifespan ran whole, and the exporter closed after it.
    assert lifecycle == ["app started", "app stopped"]
    assert closed == [True]


def test_config_from_a_yaml_file(tmp_path):
    config = tmp_path / "exporter.yml"
    config.write_text("collectors:\n  system: {enabled: false}\n")
    app = Starlette(routes=[Route("/ping", lambda request: JSONResponse({}))])
    embed(app, config=config)
    with serve_app(app) as url:
        assert httpx.get(f"{url}/ping").status_code == 200
        samples = scrape(url)
    collectors = {
        dict(labels)["collector"]
        for name, labels in samples
        if name == "afirgen_exporter_collector_success"
    }
    assert collectors == {"process", "api"}
    labels = {"endpoint": "/ping", "method": "GET", "status": "200"}
    assert value(samples, "api_requests_total", **labels) == 1


def test_routes_added_after_embed_are_labelled_by_template():
    app = FastAPI()
    embed(app, config=_no_host_config())

    @app.get("/later/{thing_id}")
    async def later(thing_id: str) -> dict:
        return {"id": thing_id}

    with serve_app(app) as url:
        for thing in ("a", "b"):
            assert httpx.get(f"{url}/later/{thing}").status_code == 200
        samples = scrape(url)
    labels = {"endpoint": "/later/{thing_id}", "method": "GET", "status": "200"}
    assert value(samples, "api_requests_total", **labels) == 2


async def _noop(scope, receive, send) -> None:
    """An ASGI app without routes, like StaticFiles."""


ROUTES = [
    Route("/items/{item_id:int}", _noop, methods=["GET"]),
    Mount(
        "/org/{org}",
        routes=[Route("/users/{user_id}", _noop), Mount("/deep", routes=[Route("/x", _noop)])],
    ),
    Mount("/static", app=_noop),
    Host("api.example.test", Starlette(routes=[Route("/hosted/{n}", _noop)])),
]


@pytest.mark.parametrize(
    ("method", "path", "host", "template"),
    [
        ("GET", "/items/7", "h", "/items/{item_id}"),
        ("POST", "/items/7", "h", "/items/{item_id}"),  # Starlette answers 405 by this route
        ("GET", "/items/seven", "h", None),  # the int convertor does not match
        ("GET", "/org/acme/users/ada", "h", "/org/{org}/users/{user_id}"),
        ("GET", "/org/acme/deep/x", "h", "/org/{org}/deep/x"),
        ("GET", "/org/acme/nothing", "h", None),
        ("GET", "/static/css/site.css", "h", "/static/{path}"),
        ("GET", "/hosted/3", "api.example.test", "/hosted/{n}"),
        ("GET", "/hosted/3", "other.test", None),
    ],
)
def test_route_template_follows_starlette_routing(method, path, host, template):
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [(b"host", host.encode())],
    }
    assert route_template(ROUTES, scope) == template


def test_embed_refuses_the_root_path():
    with pytest.raises(ValueError, match="root"):
        embed(Starlette(), path="/")


@pytest.mark.slow
def test_two_uvicorn_workers_serve_the_sum_of_both(tmp_path, postgres_url, redis_host_port):
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "DATABASE_URL": postgres_url,
        "REDIS_URL": "redis://127.0.0.1:6379/14",
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-m", "uvicorn", "examples.embedded_app:app", "--workers", "2"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "uvicorn.log").open("w+")
    server = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _two_workers_sum(url, server)
    except AssertionError:
        log.seek(0)
        print(log.read()[-3000:])  # pytest shows it beside the failure
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _two_workers_sum(url: str, server: subprocess.Popen) -> None:
    def health() -> int:
        # A new connection per request, so the kernel may hand it to either worker.
        response = httpx.get(f"{url}/api/health", headers={"Connection": "close"}, timeout=10)
        assert response.status_code == 200
        return int(response.json()["pid"])

    wait_until(lambda: server.poll() is None and health(), timeout=30, what="both workers up")
    sent = 1  # the request that saw the server up
    pids: set[int] = set()
    with concurrent.futures.ThreadPoolExecutor(8) as clients:
        while len(pids) < 2 and sent < 2000:
            pids.update(clients.map(lambda _: health(), range(40)))
            sent += 40
    assert len(pids) == 2, "every request went to one worker"
    labels = {"endpoint": "/api/health", "method": "GET", "status": "200"}
    # Whichever worker answers the scrape, it serves the sum of both.
    scrapes = [scrape(url) for _ in range(6)]
    assert {value(samples, "api_requests_total", **labels) for samples in scrapes} == {sent}
    # The app's own engine (pool_size 5 + max_overflow 5) and Redis client are read as well.
    for samples in scrapes:
        assert value(samples, "db_connection_pool_size", database="app") == 10
        assert value(samples, "cache_up", cache="cache") == 1
    in_progress = value(
        scrape(url), "api_requests_in_progress", endpoint="/api/health", method="GET"
    )
    assert in_progress == 0
