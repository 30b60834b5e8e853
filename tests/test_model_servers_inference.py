"""Inference traffic read from each engine's own metrics page: stand-ins on loopback serve pages
written from the engines' metrics documentation, for traffic each test makes and then grows;
the exporter's normalised numbers are compared with that traffic."""

from __future__ import annotations

import contextlib
import math
import subprocess
from collections.abc import Iterator

import httpx
import pytest
import yaml
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collectors.model_servers import PRESETS
from collectors.model_servers.engines import ENGINES
from collectors.model_servers.inference import MAX_PAGE_BYTES, metrics_url
from collectors.model_servers.page import PageError, PageReader, parse_sample
from exporter.config import load_config
from exporter.schema import ConfigError
from tests.engine_pages import (
    KSERVE_BUCKETS,
    TGI_BUCKETS,
    TRITON_TTFT_MS,
    VLLM_LATENCY_BUCKETS,
    VLLM_TTFT_BUCKETS,
    Traffic,
    page,
)
from tests.model_server_apps import (
    Behaviour,
    make_app,
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
    make_metrics_app,
    scrape,
    serve_stand_in,
    value,
)
from tests.support import (
    exporter_process,
    free_port,
    parse_samples,
    require_binary,
    samples_of,
    serve_app,
)

ENGINE_KINDS = tuple(ENGINES)
MODEL = "fir-summarizer"
#: the latency histogram's bounds each engine keeps (None: sum and count only)
LATENCY_BOUNDS = {
    "vllm": VLLM_LATENCY_BUCKETS,
    "tgi": TGI_BUCKETS,
    "kserve": KSERVE_BUCKETS,
    "triton": None,
    "torchserve": None,
}


class Engine:
    def __init__(self, kind: str, url: str, metrics: str, behaviour: Behaviour) -> None:
        self.kind, self.url, self.metrics, self.behaviour = kind, url, metrics, behaviour

    @property
    def traffic(self) -> Traffic:
        return self.behaviour.traffic

    def entry(self, **extra) -> dict:
        entry = {"name": f"{self.kind}-1", "kind": self.kind, "url": self.url, **extra}
        if PRESETS[self.kind].metrics_port is not None:
            entry.setdefault("metrics_url", self.metrics)
        return entry


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, Engine]]:
    with contextlib.ExitStack() as stack:
        found = {}
        for kind in ENGINE_KINDS:
            behaviour = Behaviour()
            url, alone = serve_stand_in(stack, kind, behaviour)
            metrics = alone or f"{url}/metrics"
            found[kind] = Engine(kind, url, metrics, behaviour)
        yield found


@pytest.fixture
def engine(engines, request) -> Engine:
    found = engines[request.param]
    found.behaviour.mode = "healthy"
    found.behaviour.traffic = Traffic()
    found.behaviour.paths.clear()
    return found


def numbers(registry, server: str, model: str = MODEL) -> dict[str, float | None]:
    def v(name: str, **labels: str) -> float | None:
        return value(registry, name, server=server, model=model, **labels)

    return {
        "success": v("model_server_requests_total", status="success"),
        "failure": v("model_server_requests_total", status="failure"),
        "latency_count": v("model_server_latency_seconds_count"),
        "latency_sum": v("model_server_latency_seconds_sum"),
        "ttft_count": v("model_server_time_to_first_token_seconds_count"),
        "running": v("model_server_requests_running"),
        "waiting": v("model_server_requests_waiting"),
        "prompt": v("model_server_tokens_total", kind="prompt"),
        "generation": v("model_server_tokens_total", kind="generation"),
        "kv": v("model_server_kv_cache_usage_ratio"),
    }


def expected(kind: str, traffic: Traffic) -> dict[str, float | None]:
    """What the normalised view must say for the traffic, engine by engine (what each engine's
    families cover: vLLM, TGI, Triton and TorchServe time successful requests only; KServe's
    predict histogram times every call and it has no outcome counters)."""
    t = traffic.models[MODEL]
    timed = t.success + t.failure if kind == "kserve" else t.success
    return {
        "success": None if kind == "kserve" else t.success,
        "failure": None if kind == "kserve" else t.failure,
        "latency_count": timed,
        "latency_sum": sum(t.latencies[:timed]),
        "ttft_count": len(t.ttfts) if kind in ("vllm", "triton") else None,
        "running": t.running if kind in ("vllm", "tgi") else None,
        "waiting": t.waiting if kind in ("vllm", "tgi", "triton") else None,
        "prompt": t.prompt_tokens if kind in ("vllm", "tgi") else None,
        "generation": t.generation_tokens if kind in ("vllm", "tgi") else None,
        "kv": t.kv_cache if kind == "vllm" else None,
    }


def close(got: dict, want: dict) -> bool:
    return got.keys() == want.keys() and all(
        (g is None and w is None) or (g is not None and w is not None and math.isclose(g, w))
        for g, w in ((got[k], want[k]) for k in got)
    )


@pytest.mark.parametrize("engine", ENGINE_KINDS, indirect=True)
def test_inference_numbers_follow_the_engines_own_counts_as_they_grow(engine, make_collector):
    collector = make_collector(engine.entry(models=[MODEL]))
    traffic = engine.traffic
    served = traffic.serve(MODEL, success=7, failure=3, latency=0.42, ttft=0.03)
    served.running, served.waiting, served.kv_cache = 2, 5, 0.25
    result, registry = scrape(collector)
    assert result.success, result.reason
    assert value(registry, "model_server_metrics_up", server=f"{engine.kind}-1") == 1.0
    first = numbers(registry, f"{engine.kind}-1")
    assert close(first, expected(engine.kind, traffic)), (first, expected(engine.kind, traffic))

    served = traffic.serve(MODEL, success=11, failure=4, latency=1.7, ttft=0.2)
    served.running, served.waiting, served.kv_cache = 0, 1, 0.875
    _, registry = scrape(collector)
    second = numbers(registry, f"{engine.kind}-1")
    assert close(second, expected(engine.kind, traffic)), (second, expected(engine.kind, traffic))
    if first["success"] is not None:
        assert second["success"] - first["success"] == 11
        assert second["failure"] - first["failure"] == 4


@pytest.mark.parametrize("engine", ["vllm", "tgi", "kserve"], indirect=True)
def test_engine_histogram_buckets_are_kept(engine, make_collector):
    collector = make_collector(engine.entry(models=[MODEL]))
    engine.traffic.serve(MODEL, success=4, latency=0.42)
    engine.traffic.serve(MODEL, success=2, latency=1.7)
    _, registry = scrape(collector)
    server = f"{engine.kind}-1"
    for bound in filter(math.isfinite, LATENCY_BOUNDS[engine.kind]):
        want = 4 * (0.42 <= bound) + 2 * (1.7 <= bound)
        got = value(
            registry, "model_server_latency_seconds_bucket", server=server, model=MODEL,
            le=repr(float(bound)),
        )  # fmt: skip
        assert got == want, bound


@pytest.mark.parametrize("engine", ["triton", "torchserve"], indirect=True)
def test_duration_counters_give_sum_and_count_in_seconds(engine, make_collector):
    collector = make_collector(engine.entry(models=[MODEL]))
    engine.traffic.serve(MODEL, success=5, latency=0.25)
    _, registry = scrape(collector)
    server = f"{engine.kind}-1"
    labels = {"server": server, "model": MODEL}
    assert value(registry, "model_server_latency_seconds_sum", **labels) == pytest.approx(1.25)
    assert value(registry, "model_server_latency_seconds_count", **labels) == 5
    buckets = [
        s
        for s in samples_of(scrape(collector)[0].families, "model_server_latency_seconds")
        if s.name.endswith("_bucket")
    ]
    assert [s.labels["le"] for s in buckets] == ["+Inf"]  # no invented buckets


@pytest.mark.parametrize("engine", ["triton"], indirect=True)
def test_triton_first_response_histogram_is_converted_to_seconds(engine, make_collector):
    collector = make_collector(engine.entry(models=[MODEL]))
    engine.traffic.serve(MODEL, success=3, ttft=0.3)  # 300 ms: above the 100 ms bucket
    _, registry = scrape(collector)
    for bound_ms in TRITON_TTFT_MS:
        got = value(
            registry, "model_server_time_to_first_token_seconds_bucket", server="triton-1",
            model=MODEL, le=repr(bound_ms / 1000),
        )  # fmt: skip
        assert got == (3 if 300 <= bound_ms else 0), bound_ms
    ttft_sum = value(
        registry, "model_server_time_to_first_token_seconds_sum", server="triton-1", model=MODEL
    )
    assert ttft_sum == pytest.approx(0.9)


@pytest.mark.parametrize("engine", ["vllm"], indirect=True)
@pytest.mark.parametrize("generation", ["v0", "v1"])
def test_vllm_kv_cache_from_either_generation_of_names(engine, make_collector, generation):
    engine.traffic.vllm_generation = generation
    engine.traffic.serve(MODEL, success=1).kv_cache = 0.6
    _, registry = scrape(make_collector(engine.entry()))
    got = value(registry, "model_server_kv_cache_usage_ratio", server="vllm-1", model=MODEL)
    assert got == pytest.approx(0.6)
    ttft = value(
        registry, "model_server_time_to_first_token_seconds_bucket", server="vllm-1",
        model=MODEL, le=repr(VLLM_TTFT_BUCKETS[-1]),
    )  # fmt: skip
    assert ttft == 1


@pytest.mark.parametrize("engine", ["vllm"], indirect=True)
def test_vllm_failures_come_from_inference_routes_only(engine, make_collector):
    # the stand-in's page also counts 5xx on /health and 4xx on /v1/models: not inference
    engine.traffic.serve(MODEL, success=2, failure=5)
    _, registry = scrape(make_collector(engine.entry()))
    labels = {"server": "vllm-1", "model": MODEL}
    assert value(registry, "model_server_requests_total", status="failure", **labels) == 5


@pytest.mark.parametrize("engine", ["vllm", "triton"], indirect=True)
def test_models_beyond_the_budget_are_summed_under_other(engine, make_collector):
    for i in range(5):
        engine.traffic.serve(f"m{i}", success=10 * (i + 1), failure=i)
    collector = make_collector(engine.entry(max_models=2))
    result, registry = scrape(collector)
    server = f"{engine.kind}-1"
    models = {s.labels["model"] for s in samples_of(result.families, "model_server_requests")}
    assert models == {"m4", "m3", "other"}  # the two busiest
    assert result.series_dropped >= 3
    other = value(
        registry, "model_server_requests_total", server=server, model="other", status="success"
    )  # noqa: E501
    assert other == 10 + 20 + 30
    failures = sum(
        value(registry, "model_server_requests_total", server=server, model=m, status="failure")
        for m in ("m4", "m3", "other")
    )
    assert failures == 0 + 1 + 2 + 3 + 4


# -- a metrics page that fails costs only the inference families ----------------------------


@pytest.mark.parametrize("engine", ["vllm", "tgi"], indirect=True)
@pytest.mark.parametrize(
    ("mode", "said"),
    [("error", "HTTP 500"), ("garbage", "engine metrics: "), ("empty", "none of the engine")],
)
def test_a_failing_metrics_page_leaves_availability_alone(engine, make_collector, mode, said):
    engine.traffic.serve(MODEL, success=3)
    engine.traffic.mode = mode
    collector = make_collector(engine.entry(models=[MODEL] if engine.kind == "vllm" else []))
    result, registry = scrape(collector)
    server = f"{engine.kind}-1"
    assert result.success
    assert value(registry, "model_server_availability", server=server) == 1.0
    assert value(registry, "model_server_metrics_up", server=server) == 0.0
    assert not [f for f in result.families if f.name in INFERENCE_FAMILIES]
    assert any(said in note for note in result.notes), result.notes
    # it recovers on its own
    engine.traffic.mode = "ok"
    result, registry = scrape(collector)
    assert value(registry, "model_server_metrics_up", server=server) == 1.0
    labels = {"server": server, "model": MODEL}
    assert value(registry, "model_server_requests_total", status="success", **labels) == 3


INFERENCE_FAMILIES = {
    "model_server_requests",
    "model_server_latency_seconds",
    "model_server_time_to_first_token_seconds",
    "model_server_requests_running",
    "model_server_requests_waiting",
    "model_server_tokens",
    "model_server_kv_cache_usage_ratio",
}


@pytest.mark.parametrize("engine", ["vllm"], indirect=True)
def test_a_slow_metrics_page_is_cut_at_the_deadline(engine, make_collector):
    # the probe answers at once; only the page is slow (another server, same stand-in state)
    slow = Behaviour(mode="slow", slow_seconds=3.0)
    with serve_app(make_metrics_app("vllm", slow), timeout_graceful_shutdown=1) as url:
        collector = make_collector(engine.entry(metrics_url=f"{url}/metrics"))
        result, registry = scrape(collector, seconds=0.8)
    assert result.success and result.duration_seconds < 0.8
    assert value(registry, "model_server_availability", server="vllm-1") == 1.0
    assert value(registry, "model_server_metrics_up", server="vllm-1") == 0.0
    assert any("timeout" in note for note in result.notes)


@pytest.mark.parametrize("engine", ["vllm"], indirect=True)
def test_a_page_past_the_size_cap_is_left_out(engine, make_collector):
    engine.traffic.serve(MODEL, success=1)
    engine.traffic.mode, engine.traffic.huge_bytes = "huge", MAX_PAGE_BYTES
    result, registry = scrape(make_collector(engine.entry()))
    assert result.success
    assert value(registry, "model_server_metrics_up", server="vllm-1") == 0.0
    assert any("larger than 8 MiB" in note for note in result.notes), result.notes
    engine.traffic.huge_bytes = MAX_PAGE_BYTES // 2  # under the cap: read
    _, registry = scrape(make_collector(engine.entry()))
    assert value(registry, "model_server_metrics_up", server="vllm-1") == 1.0


def test_an_unreachable_metrics_url_is_a_note_with_its_query_masked(make_collector, engines):
    vllm = engines["vllm"]
    vllm.behaviour.mode, vllm.behaviour.traffic = "healthy", Traffic()
    closed = f"http://127.0.0.1:{free_port()}/metrics?api_key=s3cret-metrics-key"
    result, registry = scrape(make_collector(vllm.entry(metrics_url=closed)))
    assert result.success
    assert value(registry, "model_server_availability", server="vllm-1") == 1.0
    assert value(registry, "model_server_metrics_up", server="vllm-1") == 0.0
    (note,) = [n for n in result.notes if n.startswith("engine metrics")]
    assert "refused" in note and "api_key=***" in note
    assert "s3cret-metrics-key" not in " ".join(result.notes)


@pytest.mark.parametrize("engine", ["vllm"], indirect=True)
def test_metrics_page_gets_the_targets_auth_headers(engine, make_collector, tmp_path):
    engine.traffic.serve(MODEL, success=2)
    engine.behaviour.required_headers = {"authorization": "Bearer tok-9"}
    try:
        (tmp_path / "token").write_text("tok-9\n")
        entry = engine.entry(bearer_token_file="token")
        _, registry = scrape(make_collector(entry, base_dir=tmp_path))
    finally:
        engine.behaviour.required_headers = {}
    assert value(registry, "model_server_metrics_up", server="vllm-1") == 1.0


@pytest.mark.parametrize("kind", ["ollama", "generic"])
def test_servers_without_engine_metrics_report_no_inference_numbers(make_collector, kind):
    behaviour = Behaviour()
    with serve_app(make_app(kind, behaviour)) as url:
        entry = {"name": "m", "kind": kind, "url": url + ("/healthz" if kind == "generic" else "")}
        result, _ = scrape(make_collector(entry))
    assert result.success
    names = {f.name for f in result.families}
    assert not names & (INFERENCE_FAMILIES | {"model_server_metrics_up"})
    assert "/metrics" not in behaviour.paths


def test_default_metrics_endpoint_per_preset():
    def url_for(kind: str, url: str, **extra) -> str | None:
        entry = {"name": "m", "kind": kind, "url": url, **extra}
        target = load_config({"model_servers": [entry]}, env={}).targets["model_servers"][0]
        return metrics_url(target, PRESETS[kind])

    assert url_for("vllm", "http://10.0.0.5:8000") == "http://10.0.0.5:8000/metrics"
    assert url_for("tgi", "https://tgi.internal") == "https://tgi.internal/metrics"
    assert url_for("kserve", "http://h:8080?key=k") == "http://h:8080/metrics?key=k"
    assert url_for("triton", "http://triton:8000") == "http://triton:8002/metrics"
    assert url_for("torchserve", "http://[::1]:8080") == "http://[::1]:8082/metrics"
    assert url_for("triton", "http://t:8000", metrics_url="http://t:9000/m") == "http://t:9000/m"
    assert url_for("ollama", "http://o:11434") is None
    assert url_for("generic", "http://g/healthz") is None


def test_an_https_triton_must_name_its_metrics_url():
    # Triton's metrics port speaks plain HTTP whatever fronts its API with TLS: the default
    # https://HOST:8002 would fail every scrape, http://HOST:8002 would send the credentials
    # in clear to a port nobody said is there
    entry = {"name": "t", "kind": "triton", "url": "https://triton.internal"}
    with pytest.raises(ConfigError) as raised:
        load_config({"model_servers": [entry]}, env={})
    message = str(raised.value)
    assert message.startswith("model_servers[0]: metrics_url must be set for kind triton")
    assert "plain HTTP" in message and "8002" in message
    entry["metrics_url"] = "http://triton.internal:8002/metrics"
    target = load_config({"model_servers": [entry]}, env={}).targets["model_servers"][0]
    assert metrics_url(target, PRESETS["triton"]) == "http://triton.internal:8002/metrics"
    # TorchServe serves its metrics API over TLS too when configured: same scheme as the API
    torchserve = {"name": "ts", "kind": "torchserve", "url": "https://ts.internal"}
    target = load_config({"model_servers": [torchserve]}, env={}).targets["model_servers"][0]
    assert metrics_url(target, PRESETS["torchserve"]) == "https://ts.internal:8082/metrics"


@pytest.mark.parametrize("kind", ["ollama", "generic"])
def test_metrics_url_on_a_kind_without_engine_metrics_is_a_config_error(kind):
    entry = {"name": "m", "kind": kind, "url": "http://127.0.0.1:1", "metrics_url": "http://x/m"}
    with pytest.raises(ConfigError, match=r"model_servers\[0\]: metrics_url is for the kinds"):
        load_config({"model_servers": [entry]}, env={})


@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_the_reader_reads_exactly_the_wanted_samples_prometheus_client_reads(kind):
    traffic = Traffic()
    traffic.serve(MODEL, success=3, failure=2)
    traffic.serve("ner", success=1)
    text = page(kind, traffic) if kind != "tgi" else page(kind, _one_model(traffic))
    reader = PageReader(ENGINES[kind])
    assert_reads_like_prometheus_client(reader, text)


#: Sample lines the text format allows that the stand-ins' pages do not all show.
TRICKY = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a \\"quoted\\" \\\\ back\\nslash",engine="0"} 3
vllm:num_requests_running{ model_name = "spaced" , engine="1" , } 4 1700000000000
vllm:num_requests_running{model_name="{braces} and, commas=yes"} +Inf
vllm:num_requests_waiting{model_name="x"} NaN
vllm:num_requests_waiting 1.5e3
vllm:kv_cache_usage_perc{} -0.0
"""


def test_the_reader_reads_tricky_lines_like_prometheus_client():
    assert_reads_like_prometheus_client(PageReader(ENGINES["vllm"]), TRICKY)


def assert_reads_like_prometheus_client(reader: PageReader, text: str) -> None:
    # the full parse, with the TYPE lines, names a counter's sample `_total` even where the
    # engine (Triton, TGI) does not; the reader looks both names up
    wanted = set(reader.by_sample)
    full = [
        (s.name.removesuffix("_total"), s.labels, s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name in wanted
    ]
    lines = reader.wanted_lines(text)[0]
    assert [parse_sample(line)[0] for line, _ in lines] == [name for _, name in lines]
    # parsed alone, then by the reader twice: the second time its label sets are remembered
    for ours in (
        [parse_sample(line) for line, _ in lines],
        *([(name, *reader.sample(line, name)) for line, name in lines] for _ in range(2)),
    ):
        ours = [(name.removesuffix("_total"), labels, value) for name, labels, value in ours]
        assert len(ours) == len(full) > 0
        for mine, theirs in zip(ours, full, strict=True):
            assert mine[:2] == theirs[:2]
            assert mine[2] == theirs[2] or (math.isnan(mine[2]) and math.isnan(theirs[2]))


@pytest.mark.parametrize(
    "line",
    [
        'vllm:num_requests_running{model_name="x" 1',
        "vllm:num_requests_running{model_name=x} 1",
        "vllm:num_requests_running{} one",
        "vllm:num_requests_running 1 2 3",
        "vllm:num_requests_running",
    ],
)
def test_broken_lines_are_refused(line):
    with pytest.raises(PageError):
        parse_sample(line)


def _one_model(traffic: Traffic) -> Traffic:
    traffic.models.pop("ner")
    return traffic


@pytest.mark.parametrize("engine", ["kserve"], indirect=True)
def test_an_idle_engine_page_is_read_with_no_numbers_yet(engine, make_collector):
    # prometheus_client declares a labelled histogram before its first observation
    result, registry = scrape(make_collector(engine.entry()))
    assert value(registry, "model_server_metrics_up", server="kserve-1") == 1.0
    assert not [f for f in result.families if f.name in INFERENCE_FAMILIES]
    assert not [n for n in result.notes if n.startswith("engine metrics")]


def test_an_unreachable_engine_reports_its_page_unread(make_collector):
    entry = {"name": "gone", "kind": "vllm", "url": f"http://127.0.0.1:{free_port()}"}
    result, registry = scrape(make_collector(entry))
    assert not result.success and result.reason == "refused"
    assert value(registry, "model_server_metrics_up", server="gone") == 0.0
    assert not [f for f in result.families if f.name in INFERENCE_FAMILIES]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["vllm"], indirect=True)
def test_a_real_exporter_serves_the_view_and_says_why_a_page_failed(engine, tmp_path):
    engine.traffic.serve(MODEL, success=6, failure=2)
    closed = f"http://127.0.0.1:{free_port()}/metrics?token=s3cret-page-token"
    config = {
        "collectors": {"system": {"enabled": False}},
        "model_servers": [
            {"name": "llm", "kind": "vllm", "url": engine.url},
            {"name": "blind", "kind": "vllm", "url": engine.url, "metrics_url": closed},
        ],
    }
    config_file = tmp_path / "exporter.yml"
    config_file.write_text(yaml.safe_dump(config))
    with exporter_process(config_file) as url:
        body = httpx.get(f"{url}/metrics", headers={"Accept": "text/plain"}).text
        landing = httpx.get(f"{url}/").text
    got = parse_samples(body)
    requests = "model_server_requests_total"
    assert got.value(requests, model=MODEL, server="llm", status="failure") == 2
    assert got.value(requests, model=MODEL, server="llm", status="success") == 6
    assert got.value("model_server_metrics_up", server="blind") == 0
    assert got.value("model_server_availability", server="blind") == 1
    assert "engine metrics: refused from" in landing and "token=***" in landing
    assert "s3cret-page-token" not in landing + body


@pytest.mark.parametrize("engine", ["vllm", "triton"], indirect=True)
def test_the_inference_exposition_passes_promtool(engine, make_collector):
    promtool = require_binary("promtool")
    engine.traffic.serve(MODEL, success=3, failure=1)
    result, registry = scrape(make_collector(engine.entry(models=[MODEL])))
    assert value(registry, "model_server_metrics_up", server=f"{engine.kind}-1") == 1.0
    check = subprocess.run(
        [promtool, "check", "metrics"], input=generate_latest(registry), capture_output=True
    )
    assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()


@pytest.mark.parametrize("engine", ["kserve"], indirect=True)
def test_mlserver_outcome_counters_and_latency_summary(engine, make_collector):
    engine.traffic.kserve_flavour = "mlserver"
    engine.traffic.serve(MODEL, success=8, failure=3, latency=0.2)
    collector = make_collector(engine.entry())
    _, registry = scrape(collector)
    labels = {"server": "kserve-1", "model": MODEL}
    assert value(registry, "model_server_requests_total", status="success", **labels) == 8
    assert value(registry, "model_server_requests_total", status="failure", **labels) == 3
    assert value(registry, "model_server_latency_seconds_count", **labels) == 11
    assert value(registry, "model_server_latency_seconds_sum", **labels) == pytest.approx(2.2)
    engine.traffic.serve(MODEL, success=1, failure=1, latency=1.0)
    _, registry = scrape(collector)
    assert value(registry, "model_server_requests_total", status="failure", **labels) == 4
    assert value(registry, "model_server_latency_seconds_sum", **labels) == pytest.approx(4.2)


def test_the_reader_reads_an_mlserver_page_like_prometheus_client():
    traffic = Traffic(kserve_flavour="mlserver")
    traffic.serve(MODEL, success=3, failure=2)
    traffic.serve("ner", success=1)
    assert_reads_like_prometheus_client(PageReader(ENGINES["kserve"]), page("kserve", traffic))
