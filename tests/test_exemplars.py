"""Exemplars on the embedded middleware's metrics: the trace of a request with an active OTel span.

Real OpenTelemetry SDK spans (started by an ASGI layer outside or inside the exporter's
middleware), a real app under uvicorn, scraped as OpenMetrics (parsed by prometheus_client)
and as protobuf (parsed by Google's protobuf runtime).
"""

from __future__ import annotations

import time

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from exporter import embed
from exporter.config import load_config
from tests import metrics_pb
from tests.prometheus_server import prometheus_server, scrape_one
from tests.support import serve_app, wait_until

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
PROTOBUF = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)


class Traced:
    """Starts a real SDK span around requests under /traced, recording their contexts."""

    def __init__(self, app, tracer, contexts: list) -> None:
        self.app = app
        self.tracer = tracer
        self.contexts = contexts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/traced"):
            await self.app(scope, receive, send)
            return
        with self.tracer.start_as_current_span("request") as span:
            self.contexts.append(span.get_span_context())
            await self.app(scope, receive, send)


async def hello(request):
    return PlainTextResponse("hi")


def build(span_outside: bool, config=None):
    tracer = TracerProvider().get_tracer("test")
    contexts: list = []
    app = Starlette(routes=[Route("/traced", hello), Route("/plain", hello)])
    if not span_outside:  # added first: ends up inside the exporter's middleware
        app.add_middleware(Traced, tracer=tracer, contexts=contexts)
    embed(app, config=config)
    served = Traced(app, tracer, contexts) if span_outside else app
    return served, contexts


def exemplars_om(body: str) -> dict[tuple[str, str], dict]:
    """(sample name, endpoint) -> exemplar labels, from OpenMetrics."""
    found = {}
    for family in parse_om(body):
        for sample in family.samples:
            if sample.exemplar is not None:
                found[(sample.name, sample.labels["endpoint"])] = sample.exemplar.labels
    return found


def check(span_outside: bool) -> None:
    app, contexts = build(span_outside)
    with serve_app(app) as url:
        assert httpx.get(url + "/plain").status_code == 200
        assert httpx.get(url + "/traced").status_code == 200
        om = httpx.get(url + "/prometheus/metrics", headers={"Accept": OPENMETRICS}).text
        pb = httpx.get(url + "/prometheus/metrics", headers={"Accept": PROTOBUF}).content
    assert len(contexts) == 1
    ids = {"trace_id": f"{contexts[0].trace_id:032x}", "span_id": f"{contexts[0].span_id:016x}"}

    found = exemplars_om(om)
    assert found[("api_requests_total", "/traced")] == ids
    assert found[("api_request_duration_seconds_bucket", "/traced")] == ids
    assert not [key for key in found if key[1] == "/plain"]  # no span, no exemplar

    families = metrics_pb.by_name(pb)
    for metric in families["api_requests_total"].metric:
        endpoint = metrics_pb.labels(metric)["endpoint"]
        has = metric.counter.HasField("exemplar")
        assert has == (endpoint == "/traced"), endpoint
        if has:
            assert metrics_pb.labels(metric.counter.exemplar) == ids
    for metric in families["api_request_duration_seconds"].metric:
        if metrics_pb.labels(metric)["endpoint"] != "/traced":
            assert not metric.histogram.exemplars
            continue
        native = list(metric.histogram.exemplars)
        assert [metrics_pb.labels(e) for e in native] == [ids]
        assert native[0].HasField("timestamp")  # required for native-histogram exemplars
        bucket_exemplars = [b.exemplar for b in metric.histogram.bucket if b.HasField("exemplar")]
        assert [metrics_pb.labels(e) for e in bucket_exemplars] == [ids]
        assert 0 < native[0].value == bucket_exemplars[0].value


def test_exemplar_from_a_span_started_outside_the_middleware():
    check(span_outside=True)


def test_exemplar_from_a_span_started_inside_the_middleware():
    check(span_outside=False)


@pytest.mark.slow
@pytest.mark.parametrize("native", [False, True], ids=["openmetrics", "protobuf"])
def test_prometheus_stores_the_exemplars(tmp_path, native):
    """Debian's Prometheus with exemplar storage keeps the trace id, over OpenMetrics or protobuf.

    Text 0.0.4 has no exemplars: over OpenMetrics they need `web.prefer_text_format: false`.
    """
    config = None if native else load_config({"web": {"prefer_text_format": False}}, env={})
    app, contexts = build(span_outside=True, config=config)
    with serve_app(app) as url:
        for _ in range(3):
            assert httpx.get(url + "/traced").status_code == 200
        config = scrape_one(url)
        features = "exemplar-storage,native-histograms" if native else "exemplar-storage"
        with prometheus_server(config, tmp_path, flags=(f"--enable-feature={features}",)) as prom:

            def stored(query):
                def found():
                    response = httpx.get(
                        f"{prom.url}/api/v1/query_exemplars",
                        params={
                            "query": query,
                            "start": time.time() - 300,
                            "end": time.time() + 60,
                        },
                        timeout=5,
                    )
                    return response.json()["data"]

                return wait_until(found, timeout=30, what=f"exemplars of {query}")

            recorded = [
                {"trace_id": f"{c.trace_id:032x}", "span_id": f"{c.span_id:016x}"} for c in contexts
            ]
            histogram = "api_request_duration_seconds" + ("" if native else "_bucket")
            for query in ("api_requests_total", histogram):
                series = stored(query)
                assert {s["seriesLabels"]["endpoint"] for s in series} == {"/traced"}
                labels = [e["labels"] for s in series for e in s["exemplars"]]
                # each is one of the test's spans; the counter keeps the latest request's
                assert labels and all(found in recorded for found in labels), (query, labels)
                if query == "api_requests_total":
                    assert labels[-1] == recorded[-1]
