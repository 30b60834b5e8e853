"""An engine metrics page that fails, is slow, too large, unreachable or absent costs only the
inference families, never availability; against stand-ins on loopback and a real exporter."""

from __future__ import annotations

import httpx
import pytest
import yaml

from collectors.model_servers.inference import MAX_PAGE_BYTES
from tests.engine_pages import Traffic
from tests.model_server_apps import Behaviour, make_app, make_metrics_app, scrape, value
from tests.model_server_engines import (
    INFERENCE_FAMILIES,
    MODEL,
    engine_fixture,  # noqa: F401 - the engine fixture
    engines_fixture,  # noqa: F401 - the engines fixture (engine resets one)
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
)
from tests.support import exporter_process, free_port, parse_samples, serve_app

# -- a metrics page that fails costs only the inference families ----------------------------


@pytest.mark.parametrize("engine", ["vllm", "tgi"], indirect=True)
@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("error", "HTTP 500"),
        ("garbage", "engine metrics: "),
        ("bad_bound", "bad bucket bound"),
        ("empty", "none of the engine"),
    ],
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
