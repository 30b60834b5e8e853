"""Embedded mode end to end: a FastAPI app on the test's PostgreSQL engine, served by uvicorn
on loopback; its requests, its engine's pool and its statements as its metrics page shows them."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from exporter import embed
from exporter.api_metrics import UNMATCHED
from exporter.config import load_config
from tests.embed_apps import TABLE, api_endpoints, fir_app, no_host_config
from tests.support import Samples, scrape_url, serve_app, wait_until


@pytest.fixture
def engine(postgres_url):
    engine = create_engine(postgres_url, pool_size=5, max_overflow=0)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, title text UNIQUE)"))
    yield engine
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {TABLE}"))
    engine.dispose()


@pytest.fixture
def served_fir_app(engine):
    app, events = fir_app(engine)
    embed(app, engine=engine, config=no_host_config())
    with serve_app(app) as url:
        try:
            yield url, events
        finally:  # let any request a failed test left waiting finish before the server stops
            for event in events.values():
                event.set()


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
    samples = scrape_url(f"{url}/prometheus/metrics")
    assert (
        samples.value(
            "api_requests_total", endpoint="/api/fir/{fir_id}", method="GET", status="200"
        )
        == sent
    )
    assert (
        samples.value(
            "api_request_duration_seconds_count",
            endpoint="/api/fir/{fir_id}",
            method="GET",
        )
        == sent
    )
    assert (
        samples.value("api_requests_in_progress", endpoint="/api/fir/{fir_id}", method="GET") == 0
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
    samples = scrape_url(f"{url}/prometheus/metrics")
    for status, count in (("201", 2), ("409", 1), ("422", 1)):
        labels = {"endpoint": "/api/fir", "method": "POST", "status": status}
        assert samples.value("api_requests_total", **labels) == count, status
    labels = {"endpoint": "/api/fir/{fir_id}", "method": "GET", "status": "404"}
    assert samples.value("api_requests_total", **labels) == 1


def test_unmatched_requests_share_one_endpoint_and_scrapes_are_not_counted(served_fir_app):
    url, _ = served_fir_app
    with httpx.Client() as client:
        for path in ("/nothing/here", "/nothing/else", "/api/firs/1"):
            assert client.get(url + path).status_code == 404
        for _ in range(3):
            assert client.get(f"{url}/prometheus/metrics").status_code == 200
        assert client.get(f"{url}/prometheus/-/healthy").status_code == 200
    samples = scrape_url(f"{url}/prometheus/metrics")
    labels = {"endpoint": UNMATCHED, "method": "GET", "status": "404"}
    assert samples.value("api_requests_total", **labels) == 3
    assert api_endpoints(samples) == {UNMATCHED}


def test_an_exception_counts_as_500(served_fir_app):
    url, _ = served_fir_app
    assert httpx.get(f"{url}/api/boom").status_code == 500
    samples = scrape_url(f"{url}/prometheus/metrics")
    labels = {"endpoint": "/api/boom", "method": "GET", "status": "500"}
    assert samples.value("api_requests_total", **labels) == 1
    assert samples.value("api_requests_in_progress", endpoint="/api/boom", method="GET") == 0


def test_a_stream_that_fails_half_way_counts_as_500(served_fir_app):
    url, _ = served_fir_app
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{url}/api/stream/broken")
    samples = scrape_url(f"{url}/prometheus/metrics")
    labels = {"endpoint": "/api/stream/broken", "method": "GET"}
    assert samples.value("api_requests_total", status="500", **labels) == 1
    assert samples.value("api_requests_total", status="200", **labels) is None
    assert samples.value("api_requests_in_progress", **labels) == 0


def test_a_streaming_response_is_timed_to_the_end_of_its_body(served_fir_app):
    url, events = served_fir_app
    labels = {"endpoint": "/api/stream", "method": "GET"}
    with httpx.Client(timeout=30) as client, client.stream("GET", f"{url}/api/stream") as response:
        chunks = response.iter_bytes()
        assert next(chunks).startswith(b"first")
        held_from = time.monotonic()
        # The body is still open: the request is in progress and not yet counted.
        samples = scrape_url(f"{url}/prometheus/metrics")
        assert samples.value("api_requests_in_progress", **labels) == 1
        assert not samples.value("api_request_duration_seconds_count", **labels)
        wait_until(lambda: time.monotonic() - held_from > 0.3, what="the stream to be held")
        held = time.monotonic() - held_from
        events["release_stream"].set()
        assert b"".join(chunks).endswith(b"last\n")
    samples = scrape_url(f"{url}/prometheus/metrics")
    assert samples.value("api_request_duration_seconds_count", **labels) == 1
    # The server's clock ran at least from before the first chunk to after the release.
    assert samples.value("api_request_duration_seconds_sum", **labels) >= held
    assert samples.value("api_requests_in_progress", **labels) == 0


def test_pool_metrics_describe_the_apps_own_engine(served_fir_app):
    url, events = served_fir_app
    pool = {"database": "app"}
    with concurrent.futures.ThreadPoolExecutor(1) as pool_user:
        held = pool_user.submit(httpx.get, f"{url}/api/pool/hold", timeout=30)
        try:
            wait_until(
                lambda: (
                    scrape_url(f"{url}/prometheus/metrics").value(
                        "db_connection_pool_checked_out", **pool
                    )
                    == 2
                ),
                what="two connections checked out",
            )
            samples = scrape_url(f"{url}/prometheus/metrics")
            assert samples.value("db_connection_pool_size", **pool) == 5
            labels = {"endpoint": "/api/pool/hold", "method": "GET"}
            assert samples.value("api_requests_in_progress", **labels) == 1
        finally:
            events["release_pool"].set()
        assert held.result().status_code == 200
        assert (
            scrape_url(f"{url}/prometheus/metrics").value("db_connection_pool_checked_out", **pool)
            == 0
        )


def test_pool_formula_reads_0_idle_and_the_held_share_while_a_request_holds(served_fir_app):
    url, events = served_fir_app
    pool = {"database": "app"}

    def formula(samples: Samples) -> float:
        size = samples.value("db_connection_pool_size", **pool)
        return (size - samples.value("db_connection_pool_available", **pool)) / size * 100

    assert formula(scrape_url(f"{url}/prometheus/metrics")) == 0
    with concurrent.futures.ThreadPoolExecutor(1) as pool_user:
        held = pool_user.submit(httpx.get, f"{url}/api/pool/hold", timeout=30)
        try:
            wait_until(
                lambda: formula(scrape_url(f"{url}/prometheus/metrics")) == 2 / 5 * 100,
                what="40% in use",
            )
        finally:
            events["release_pool"].set()
        assert held.result().status_code == 200
    samples = scrape_url(f"{url}/prometheus/metrics")
    assert formula(samples) == 0 and samples.value("db_connection_pool_idle", **pool) >= 2


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
        samples = scrape_url(f"{url}/prometheus/metrics")
        of = {"database": "app", "table": TABLE}
        assert samples.value("db_queries_total", type="insert", **of) == posts + 1
        assert samples.value("db_queries_total", type="select", **of) == gets + missing
        assert samples.value("db_query_errors_total", type="insert", **of) == 1  # the 409
        assert samples.value("db_query_duration_seconds_count", type="select", **of) == (
            gets + missing
        )


def test_track_statements_false_in_the_config_turns_the_observer_off(engine):
    app, _ = fir_app(engine)
    config = load_config(
        {"collectors": {"system": {"enabled": False}, "database": {"track_statements": False}}}
    )
    embed(app, engine=engine, config=config)
    with serve_app(app) as url:
        assert httpx.get(f"{url}/api/fir/1").status_code == 404
        samples = scrape_url(f"{url}/prometheus/metrics")
    assert samples.value("db_connection_pool_size", database="app") == 5
    assert not [name for name, _ in samples if name.startswith("db_quer")]
