"""End to end: an embedded FastAPI app on SQLAlchemy/PostgreSQL with real traffic, scraped by a
real Prometheus, whose spec queries return the traffic's true values.

Exact checks despite Prometheus's extrapolation: `rate()` and the quantile run over a range
whose both ends are scrape timestamps (`[Nms] @ t`), so the rate is (last - first) / N with no
extrapolation, and the traffic between those two scrapes is what the test sent. The pool
formula is read while the test holds connections, and `db_queries_total` counts exactly the
statements the handlers ran (the exporter's own are not the app's).
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from exporter import embed
from tests.prometheus_server import prometheus_server, scrape_one
from tests.support import serve_app, wait_until
from tests.tq_support import unique

pytestmark = pytest.mark.slow

#: classic buckets of api_request_duration_seconds (prometheus_client's defaults)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
SLOW_SECONDS = 0.3
FAST, SLOW, POSTS = 40, 12, 6
HELD = 3
POOL_SIZE, MAX_OVERFLOW = 4, 4
POOL_FORMULA = (
    "(db_connection_pool_size - db_connection_pool_available) / db_connection_pool_size * 100"
)


def backend(engine, table: str, release: threading.Event) -> FastAPI:
    app = FastAPI()

    @app.get("/api/fast")
    def fast() -> dict:
        with engine.connect() as conn:
            return {"n": conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()}

    @app.get("/api/slow")
    def slow() -> dict:
        time.sleep(SLOW_SECONDS)
        with engine.connect() as conn:
            return {"n": conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()}

    @app.post("/api/fir", status_code=201)
    def create() -> dict:
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO {table} (title) VALUES ('x')"))
        return {}

    @app.get("/api/hold")
    def hold() -> dict:
        conns = [engine.connect() for _ in range(HELD)]
        try:
            for conn in conns:
                conn.execute(text("SELECT 1"))
            release.wait(timeout=60)
        finally:
            for conn in conns:
                conn.close()
        return {"held": HELD}

    return app


def timed(client: httpx.Client, method: str, url: str) -> float:
    started = time.perf_counter()
    response = client.request(method, url)
    took = time.perf_counter() - started
    assert response.status_code in (200, 201), response.text
    return took


def bucket_of(seconds: float) -> float:
    return next((b for b in BUCKETS if seconds <= b), math.inf)


def expected_quantile(q: float, low: float, highs: list[float]) -> float | None:
    """histogram_quantile over the classic buckets, if every request's bucket is known: its
    server-side duration lies between `low` (what the handler sleeps) and the client-side
    latency. None when some request could be in either of two buckets."""
    buckets = {bucket_of(low)} | {bucket_of(h) for h in highs}
    if len(buckets) != 1:
        return None
    upper = buckets.pop()
    lower = max([0.0, *(b for b in BUCKETS if b < upper)])
    return lower + (upper - lower) * q  # every observation in one bucket: linear in it


def one(prom, expr: str) -> float:
    result = prom.query(expr)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def samples(prom, selector: str) -> list[tuple[float, float]]:
    (series,) = prom.query(f"{selector}[10m]")
    return [(float(t), float(v)) for t, v in series["values"]]


def test_spec_queries_return_the_traffics_true_values(tmp_path, postgres_url):
    table = unique("e2e_fir")
    engine = create_engine(postgres_url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id serial PRIMARY KEY, title text)"))
    release = threading.Event()
    app = backend(engine, table, release)
    embed(app, engine=engine)
    try:
        with (
            serve_app(app) as base,
            prometheus_server(scrape_one(base), tmp_path) as prom,
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            # one request per endpoint first, so every series exists before the traffic
            for method, path in (("GET", "/api/fast"), ("GET", "/api/slow"), ("POST", "/api/fir")):
                timed(client, method, path)
            fast_selector = 'api_requests_total{endpoint="/api/fast",method="GET",status="200"}'
            # each endpoint counted once in the same scrape (the middleware counts a request
            # just after its body is sent, so a scrape can fall between the two)
            wait_until(
                lambda: len(prom.query("api_requests_total == 1")) == 3,
                timeout=20,
                what="the first request of each endpoint scraped",
            )
            idle = wait_until(
                lambda: (r := prom.query(POOL_FORMULA)) and r, timeout=20, what="pool numbers"
            )
            assert float(idle[0]["value"][1]) == 0  # an idle app: 0%, whatever stays open
            before = samples(prom, fast_selector)[-1][0]  # a scrape before the traffic

            fast = [timed(client, "GET", "/api/fast") for _ in range(FAST)]
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                slow = list(pool.map(lambda _: timed(client, "GET", "/api/slow"), range(SLOW)))
            for _ in range(POSTS):
                timed(client, "POST", "/api/fir")

            # while the app holds connections, the formula is exactly held / capacity
            with concurrent.futures.ThreadPoolExecutor(1) as holder:
                held = holder.submit(httpx.get, f"{base}/api/hold", timeout=60)
                expected_busy = HELD / (POOL_SIZE + MAX_OVERFLOW) * 100
                wait_until(
                    lambda: prom.query(POOL_FORMULA) and one(prom, POOL_FORMULA) == expected_busy,
                    timeout=20,
                    what=f"the pool formula at {expected_busy}",
                )
                release.set()
                assert held.result().status_code == 200

            # a scrape after all the traffic
            wait_until(
                lambda: samples(prom, fast_selector)[-1][1] == FAST + 1,
                timeout=20,
                what="the traffic scraped",
            )
            after = samples(prom, fast_selector)[-1][0]
            millis = round((after - before) * 1000)  # scrape timestamps are whole ms
            window, seconds = f"[{millis}ms] @ {after:.3f}", millis / 1000

            for endpoint, sent in (("/api/fast", FAST), ("/api/slow", SLOW)):
                rate = one(prom, f'rate(api_requests_total{{endpoint="{endpoint}"}}{window})')
                seen = samples(prom, f'api_requests_total{{endpoint="{endpoint}"}}')
                assert math.isclose(rate * seconds, sent, rel_tol=1e-9), (endpoint, before, seen)
            posts = one(prom, f'rate(api_requests_total{{endpoint="/api/fir"}}{window})')
            assert math.isclose(posts * seconds, POSTS, rel_tol=1e-9)

            for endpoint, low, latencies in (
                ("/api/fast", 0.0, fast),
                ("/api/slow", SLOW_SECONDS, slow),
            ):
                p95 = one(
                    prom,
                    "histogram_quantile(0.95, rate(api_request_duration_seconds_bucket"
                    f'{{endpoint="{endpoint}"}}{window}))',
                )
                exact = expected_quantile(0.95, low, latencies)
                print(f"\n{endpoint}: p95 {p95:.4f} s, from the test's latencies {exact}")
                if exact is not None:
                    assert math.isclose(p95, exact, rel_tol=1e-9), (endpoint, p95, exact)
                else:  # some requests could be in either of two buckets: the range they span
                    assert bucket_of(low) * 0.95 <= p95 <= bucket_of(max(latencies)), endpoint

            # every statement the handlers ran, by type and table, and none of the exporter's
            queries = {
                r["metric"]["type"]: float(r["value"][1])
                for r in prom.query(f'db_queries_total{{database="app", table="{table}"}}')
            }
            assert queries == {"select": FAST + SLOW + 2, "insert": POSTS + 1}
            assert one(prom, 'db_queries_total{database="app", type="select", table="other"}') == (
                HELD
            )
    finally:
        release.set()
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
        engine.dispose()
