"""Format negotiation (q values, Prometheus's Accept headers), UTF-8 name escaping, created series."""

from __future__ import annotations

import gzip

import httpx
import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from collectors.base import ScrapeContext, SourceCollector
from exporter.app import create_app
from exporter.config import load_config
from exporter.exposition import Encoding, Format, negotiate
from exporter.name_escaping import escape_name
from exporter.schema import ConfigError
from exporter.state import Exporter
from tests import metrics_pb
from tests.support import family_samples, serve_app

PROTO = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
# What Debian's Prometheus 2.42 sends with --enable-feature=native-histograms (captured),
# and without it.
PROM_242_NATIVE = (
    f"{PROTO},application/openmetrics-text;version=1.0.0;q=0.8,"
    "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROM_242 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
# Prometheus 3 style: every clause says how UTF-8 names may come.
PROM_3 = (
    f"{PROTO};escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=1.0.0;"
    "escaping=allow-utf-8;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.mark.parametrize(
    ("accept", "prefer_text", "encoding", "escaping"),
    [
        (None, True, Encoding.TEXT, None),
        ("", True, Encoding.TEXT, None),
        (PROM_242_NATIVE, True, Encoding.PROTOBUF, None),
        (PROM_242, True, Encoding.TEXT, None),
        (PROM_242, False, Encoding.OPENMETRICS, None),
        (PROM_3, True, Encoding.PROTOBUF, "allow-utf-8"),
        # q values decide, not the order written
        (f"text/plain;q=0.2,{PROTO};q=0.9", True, Encoding.PROTOBUF, None),
        (f"{PROTO};q=0.1,text/plain;q=0.2", True, Encoding.TEXT, None),
        # protobuf without the delimited encoding, or another message, is not ours
        (
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
            True,
            Encoding.TEXT,
            None,
        ),
        (
            "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
            True,
            Encoding.TEXT,
            None,
        ),
        (f"{PROTO};q=0", True, Encoding.TEXT, None),
        ("application/openmetrics-text", True, Encoding.OPENMETRICS, None),
        ("application/openmetrics-text;version=9.0.0,text/plain;q=0.1", True, Encoding.TEXT, None),
        ("text/plain;version=1.0.0;escaping=dots", True, Encoding.TEXT, "dots"),
        ("text/plain;escaping=nonsense", True, Encoding.TEXT, None),
        ("image/png", True, Encoding.TEXT, None),
    ],
)
def test_negotiation(accept, prefer_text, encoding, escaping):
    fmt = negotiate(accept, prefer_text=prefer_text)
    assert (fmt.encoding, fmt.escaping) == (encoding, escaping)


def test_default_content_types_are_unchanged():
    assert Format.TEXT.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert (
        Format.OPENMETRICS.content_type
        == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert negotiate(PROM_242_NATIVE).content_type == (
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    )
    assert negotiate("text/plain;version=1.0.0;escaping=values").content_type == (
        "text/plain; version=1.0.0; charset=utf-8; escaping=values"
    )


@pytest.mark.parametrize(
    ("name", "scheme", "escaped"),
    [
        ("legacy_name:ok", "dots", "legacy_name:ok"),  # valid names never change
        ("my.metric", "underscores", "my_metric"),
        ("my.metric_x", "dots", "my_dot_metric__x"),
        ("my.metric", "values", "U__my_2e_metric"),
        ("0day ✓", "values", "U___30_day_20__2713_"),
        ("0day", "underscores", "_day"),
        ("my.metric", "allow-utf-8", "my.metric"),
    ],
)
def test_escape_name(name, scheme, escaped):
    assert escape_name(name, scheme) == escaped


class Utf8Collector(SourceCollector):
    collector = "utf8"

    def __init__(self) -> None:
        super().__init__("utf8")

    def fetch(self, ctx: ScrapeContext):
        gauge = GaugeMetricFamily("app.queue.depth", "A dotted name.", labels=["queue.name"])
        gauge.add_metric(["q.1"], 3.0)
        jobs = CounterMetricFamily("app_jobs", "A legacy counter.", labels=["kind"], created=1.7e9)
        jobs.add_metric(["a"], 5.0, created=1.7e9)
        return [gauge, jobs]


@pytest.fixture(scope="module")
def urls():
    found = {}
    exporters = []
    for created in (True, False):
        config = load_config({"scrape": {"created_series": created}}, env={})
        exporter = Exporter(config, extra_collectors=[Utf8Collector()])
        exporters.append(exporter)
        found[created] = serve_app(create_app(exporter))
    with found[True] as with_created, found[False] as without_created:
        yield {True: with_created, False: without_created}
    for exporter in exporters:
        exporter.loaded.engine.close()


def get(url, accept):
    return httpx.get(f"{url}/metrics?collect[]=utf8", headers={"Accept": accept}, timeout=10)


@pytest.mark.parametrize(
    ("scheme", "name", "label"),
    [
        ("allow-utf-8", "app.queue.depth", "queue.name"),
        ("underscores", "app_queue_depth", "queue_name"),
        ("dots", "app_dot_queue_dot_depth", "queue_dot_name"),
        ("values", "U__app_2e_queue_2e_depth", "U__queue_2e_name"),
    ],
)
def test_each_scheme_in_every_format(urls, scheme, name, label):
    url = urls[True]
    text = get(url, f"text/plain;version=1.0.0;escaping={scheme}")
    assert (
        text.headers["content-type"]
        == f"text/plain; version=1.0.0; charset=utf-8; escaping={scheme}"
    )
    om = get(url, f"application/openmetrics-text;version=1.0.0;escaping={scheme}")
    assert om.headers["content-type"].endswith(f"; escaping={scheme}")
    pb = get(url, f"{PROTO};escaping={scheme}")
    assert pb.headers["content-type"].endswith(f"encoding=delimited; escaping={scheme}")

    for body, parse in ((text.text, parse_text), (om.text, parse_om)):
        samples = family_samples(parse(body))
        assert samples.value(name, **{label: "q.1"}) == 3.0, body
        assert samples.value("app_jobs_total", kind="a") == 5.0  # legacy: as always
    families = metrics_pb.by_name(pb.content)
    assert metrics_pb.labels(families[name].metric[0]) == {label: "q.1"}
    assert families["app_jobs_total"].metric[0].counter.value == 5.0


def test_default_output_quotes_nothing_and_says_no_scheme(urls):
    response = get(urls[True], "text/plain")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'app_queue_depth{queue_name="q.1"} 3.0' in response.text


@pytest.mark.parametrize("created", [True, False])
def test_created_series_option(urls, created):
    text = get(urls[created], "text/plain").text
    assert ("app_jobs_created" in text) is created
    om = get(urls[created], "application/openmetrics-text").text
    assert ("app_jobs_created" in om) is created
    (metric,) = metrics_pb.by_name(get(urls[created], PROTO).content)["app_jobs_total"].metric
    assert metric.counter.HasField("created_timestamp") is created
    if created:
        assert metric.counter.created_timestamp.seconds == 1_700_000_000


def test_protobuf_is_gzipped_like_text(urls):
    with httpx.stream(
        "GET",
        f"{urls[True]}/metrics",
        headers={"Accept": PROM_242_NATIVE, "Accept-Encoding": "gzip"},
    ) as response:
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["content-type"].startswith("application/vnd.google.protobuf")
        body = gzip.decompress(b"".join(response.iter_raw()))
    families = metrics_pb.by_name(body)
    assert families["afirgen_exporter_build_info"].metric[0].gauge.value == 1
    assert "app.queue.depth" not in families and "app_queue_depth" in families


def test_created_series_must_be_a_boolean():
    with pytest.raises(ConfigError, match=r"scrape\.created_series: expected true or false"):
        load_config({"scrape": {"created_series": "sometimes"}}, env={})
