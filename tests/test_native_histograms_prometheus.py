"""Native histograms end to end: Debian's Prometheus (native-histograms on) scrapes the embedded app.

The app runs under uvicorn on loopback. Prometheus asks for protobuf, stores the request
duration as native histograms, and `histogram_quantile` over them answers the latencies this
test produced (handlers that sleep known times), within one native bucket. A histogram of
values the test observes itself pins the bucket math exactly, and one with a small bucket
limit shows the resolution reduced.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time

import httpx
import pytest
from prometheus_client.core import (
    CounterMetricFamily,
    InfoMetricFamily,
    StateSetMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from collectors.base import ScrapeContext, SourceCollector
from collectors.native_histogram import Histograms, NativeSettings
from exporter import embed
from tests.prometheus_server import prometheus_server, scrape_one
from tests.support import serve_app, wait_until

pytestmark = pytest.mark.slow

FAST, SLOW = 0.25, 1.0  # seconds the handlers sleep
FAST_REQUESTS, SLOW_REQUESTS = 20, 5
KNOWN = [0.002 * 1.013**i for i in range(400)]  # 2 ms .. ~0.35 s, observed by the test


class KnownValues(SourceCollector):
    """Serves histograms the test fills itself, and one family of every other type."""

    collector = "known"

    def __init__(self, *families: Histograms) -> None:
        super().__init__("known")
        self.histograms = families

    def fetch(self, ctx: ScrapeContext):
        summary = SummaryMetricFamily("test_summary_seconds", "S.", labels=["op"])
        summary.add_metric(["a"], count_value=4, sum_value=2.5)
        info = InfoMetricFamily("test_build", "I.", value={"version": "1.2"})
        state = StateSetMetricFamily("test_state", "St.", value={"on": True, "off": False})
        counter = CounterMetricFamily("test_jobs", "C.", labels=["kind"], created=1.7e9)
        counter.add_metric(["x"], 7, created=1.7e9)
        # No gauge histogram: Prometheus 2.42's protobuf parser stores GAUGE_HISTOGRAM buckets
        # without their `_bucket` suffix (later versions fixed it); tests/test_protobuf_format.py
        # checks our encoding of them against Google's parser.
        others = [summary, info, state, counter]
        return [h.family() for h in self.histograms] + others


async def work(request: Request) -> PlainTextResponse:
    await asyncio.sleep(int(request.path_params["ms"]) / 1000)
    return PlainTextResponse("done")


def timed_get(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    status = httpx.get(url, timeout=60).status_code
    return status, time.perf_counter() - started


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def base(schema: int) -> float:
    return 2.0 ** (2.0**-schema)


def one_value(prom, expr: str) -> float:
    result = prom.query(expr)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def test_prometheus_stores_native_histograms_and_answers_quantiles(tmp_path):
    known = Histograms("test_known_seconds", "Values observed by the test.")
    coarse = Histograms(
        "test_coarse_seconds",
        "Same values, 20 buckets at most.",
        native=NativeSettings(max_buckets=20),
    )
    for value in KNOWN:
        known.observe(value)
        coarse.observe(value)
    app = Starlette(routes=[Route("/work/{ms:int}", work)])
    embed(app, collectors=[KnownValues(known, coarse)])
    with serve_app(app) as url:
        with concurrent.futures.ThreadPoolExecutor(FAST_REQUESTS + SLOW_REQUESTS) as pool:
            sleeps = [FAST] * FAST_REQUESTS + [SLOW] * SLOW_REQUESTS
            timed = list(pool.map(lambda s: timed_get(f"{url}/work/{int(s * 1000)}"), sleeps))
        assert [status for status, _ in timed] == [200] * len(sleeps)
        # Each server-side duration lies between its sleep and what the client measured.
        client = [elapsed for _, elapsed in timed]
        # text scrapers still get the classic buckets
        text = httpx.get(url + "/prometheus/metrics", headers={"Accept": "text/plain"}).text
        classic = {
            s.labels["le"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "api_request_duration_seconds_bucket"
        }
        assert classic["0.1"] == 0  # nothing answered faster than it slept
        assert classic["0.75"] <= FAST_REQUESTS  # the slow ones slept 1 s
        assert classic["+Inf"] == len(sleeps)

        config = scrape_one(url)
        flags = ("--enable-feature=native-histograms",)
        with prometheus_server(config, tmp_path, flags=flags) as prom:
            selector = 'api_request_duration_seconds{endpoint="/work/{ms}",method="GET"}'

            def stored():
                result = prom.query(selector)
                return result and "histogram" in result[0] and result

            series = wait_until(stored, timeout=30, what="a native histogram in Prometheus")
            _, histogram = series[0]["histogram"]
            assert histogram["count"] == str(FAST_REQUESTS + SLOW_REQUESTS)
            target = prom.targets()[0]
            assert target["health"] == "up", target

            step = base(3)  # one native bucket's width at the default schema
            for q in (0.5, 0.9):
                got = one_value(prom, f"histogram_quantile({q}, {selector})")
                low, high = exact_quantile(sleeps, q), exact_quantile(client, q)
                assert low / step <= got <= high * step, (q, low, got, high)

            for q in (0.1, 0.5, 0.9, 0.99):
                expected = exact_quantile(KNOWN, q)
                got = one_value(prom, f"histogram_quantile({q}, test_known_seconds)")
                assert expected / step <= got <= expected * step, (q, expected, got)

            # every other type came through protobuf too
            assert one_value(prom, 'test_summary_seconds_count{op="a"}') == 4
            assert one_value(prom, 'test_summary_seconds_sum{op="a"}') == 2.5
            assert one_value(prom, 'test_build_info{version="1.2"}') == 1
            assert one_value(prom, 'test_state{test_state="on"}') == 1
            assert one_value(prom, 'test_state{test_state="off"}') == 0
            assert one_value(prom, 'test_jobs_total{kind="x"}') == 7
            assert one_value(prom, "afirgen_exporter_build_info") == 1
            assert one_value(prom, 'afirgen_exporter_collector_success{collector="api"}') == 1
            assert prom.query("system_cpu_seconds_total")  # a collector's labelled counters

            # the coarse one was reduced to fit 20 buckets: wider buckets, same count
            _, coarse_h = prom.query("test_coarse_seconds")[0]["histogram"]
            assert coarse_h["count"] == str(len(KNOWN))
            buckets = coarse_h["buckets"]
            assert len(buckets) <= 20
            widths = {round(float(b[2]) / float(b[1]), 6) for b in buckets if float(b[1]) > 0}
            assert widths and all(w >= round(base(1), 6) for w in widths), widths
            assert sum(float(b[3]) for b in buckets) == len(KNOWN)
