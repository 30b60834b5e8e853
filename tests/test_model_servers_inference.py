"""Inference traffic read from each engine's own metrics page: stand-ins on loopback serve pages
written from the engines' metrics documentation, for traffic each test makes and then grows;
the exporter's normalised numbers are compared with that traffic."""

from __future__ import annotations

import math
import subprocess

import pytest
from prometheus_client.exposition import generate_latest

from tests.engine_pages import (
    KSERVE_BUCKETS,
    TGI_BUCKETS,
    TRITON_TTFT_MS,
    VLLM_LATENCY_BUCKETS,
    VLLM_TTFT_BUCKETS,
    Traffic,
)
from tests.model_server_apps import scrape, value
from tests.model_server_engines import (
    ENGINE_KINDS,
    MODEL,
    engine_fixture,  # noqa: F401 - the engine fixture
    engines_fixture,  # noqa: F401 - the engines fixture (engine resets one)
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
)
from tests.support import require_binary, samples_of

#: the latency histogram's bounds each engine keeps (None: sum and count only)
LATENCY_BOUNDS = {
    "vllm": VLLM_LATENCY_BUCKETS,
    "tgi": TGI_BUCKETS,
    "kserve": KSERVE_BUCKETS,
    "triton": None,
    "torchserve": None,
}


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
