"""The model-server collector against real HTTP servers on loopback, one per preset: what a
healthy, a not-ready and a garbled server each report, and the families the specs declare."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest

from collectors.catalog import BY_NAME
from collectors.model_servers import PRESETS, SPECS, STATUSES, TABLES
from collectors.model_servers.readiness import model_path
from collectors.specs import by_name
from exporter.config import load_config
from exporter.schema import ConfigError
from tests.model_server_apps import GENERIC_PATH, LOADED, MODELS, VERSION, scrape, value
from tests.model_server_targets import (
    KINDS,
    NOT_READY,
    UNVERSIONED,
    answered,
    configured,
    fresh_fixture,  # noqa: F401 - the fresh fixture
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
    servers_fixture,  # noqa: F401 - the servers fixture (fresh resets it)
    target_config,
)
from tests.support import free_port, require_binary, samples_of

# -- healthy, every preset ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_healthy_server_is_up_available_and_reports_models_and_version(fresh, make_collector, kind):
    served = fresh[kind]
    collector = make_collector(target_config(kind, served.url))
    result, registry = scrape(collector)
    server = f"{kind}-1"
    assert result.success, result.reason
    assert value(registry, "model_server_up", server=server) == 1.0
    assert value(registry, "model_server_availability", server=server) == 1.0
    for model in configured(kind):
        assert value(registry, "model_server_model_ready", server=server, model=model) == 1.0
    version = "" if kind in UNVERSIONED else VERSION
    info = value(registry, "model_server_info", server=server, kind=kind, version=version)
    assert info == 1.0
    # every probe request was answered with a 2xx and timed into the histogram (the metrics
    # page is not a probe request)
    requests = len([p for p in served.behaviour.paths if p != "/metrics"])
    assert requests >= 1
    assert (
        value(registry, "model_server_probe_requests_total", server=server, status="2xx")
        == requests
    )
    assert value(registry, "model_server_probe_duration_seconds_count", server=server) == requests
    assert value(registry, "model_server_probe_duration_seconds_sum", server=server) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_presets_ask_every_documented_endpoint(fresh, make_collector, kind):
    collector = make_collector(target_config(kind, fresh[kind].url))
    scrape(collector)
    expected = {
        model_path(e.path, model) if "{model}" in e.path else e.path or GENERIC_PATH
        for e in PRESETS[kind].endpoints
        for model in configured(kind)[:2] or ("",)
    }
    if PRESETS[kind].metrics_path:
        expected.add(PRESETS[kind].metrics_path)  # the engine's page (on its own port or not)
    assert set(fresh[kind].behaviour.paths) == expected


def test_ollama_reports_loaded_models_and_matches_untagged_names(fresh, make_collector):
    collector = make_collector(target_config("ollama", fresh["ollama"].url))
    _, registry = scrape(collector)
    loaded = "model_server_model_loaded"
    assert LOADED == ("fir-summarizer",)  # untagged here, `fir-summarizer:latest` in Ollama
    assert value(registry, loaded, server="ollama-1", model="fir-summarizer") == 1.0
    assert value(registry, loaded, server="ollama-1", model="ner:latest") == 0.0


def test_models_listed_by_the_server_are_reported_when_none_are_configured(fresh, make_collector):
    collector = make_collector(target_config("vllm", fresh["vllm"].url, models=[]))
    _, registry = scrape(collector)
    for model in MODELS:
        assert value(registry, "model_server_model_ready", server="vllm-1", model=model) == 1.0


def test_discovered_models_beyond_the_budget_are_dropped_and_counted(fresh, make_collector):
    collector = make_collector(target_config("vllm", fresh["vllm"].url, models=[], max_models=1))
    result, registry = scrape(collector)
    ready = samples_of(result.families, "model_server_model_ready")
    assert len(ready) == 1
    assert result.series_dropped == len(MODELS) - 1


# -- not ready is data, not a failure ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_not_ready_server_succeeds_with_availability_zero(fresh, make_collector, kind):
    served = fresh[kind]
    served.behaviour.mode, not_ready_models = NOT_READY[kind]
    collector = make_collector(target_config(kind, served.url))
    result, registry = scrape(collector)
    server = f"{kind}-1"
    assert result.success, "a server that answers 'not ready' is data, not a collector failure"
    assert value(registry, "model_server_up", server=server) == 1.0
    assert value(registry, "model_server_availability", server=server) == 0.0
    for model in configured(kind):
        expected = 0.0 if model in not_ready_models else 1.0
        got = value(registry, "model_server_model_ready", server=server, model=model)
        assert got == expected, model
    errors = sum(
        value(registry, "model_server_probe_requests_total", server=server, status=s)
        for s in ("4xx", "5xx")
    )
    if served.behaviour.mode == "not_ready":  # a missing model is not an error answer
        assert errors >= 1


def test_v2_model_not_ready_is_a_400_counted_as_4xx(fresh, make_collector):
    fresh["triton"].behaviour.mode = "not_ready"
    collector = make_collector(target_config("triton", fresh["triton"].url))
    _, registry = scrape(collector)
    assert (
        value(registry, "model_server_probe_requests_total", server="triton-1", status="4xx") == 1
    )
    assert (
        value(registry, "model_server_probe_requests_total", server="triton-1", status="5xx") == 1
    )


def test_vllm_model_missing_from_the_list_is_not_ready(fresh, make_collector):
    fresh["vllm"].behaviour.mode = "model_missing"
    collector = make_collector(target_config("vllm", fresh["vllm"].url))
    result, registry = scrape(collector)
    assert result.success
    assert value(registry, "model_server_model_ready", server="vllm-1", model="ner") == 0.0
    assert value(registry, "model_server_availability", server="vllm-1") == 0.0


# -- malformed bodies ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["generic", "torchserve", "vllm", "ollama", "tgi", "kserve"])
def test_malformed_json_counts_as_body_mismatch(fresh, make_collector, kind):
    fresh[kind].behaviour.mode = "malformed"
    entry = target_config(kind, fresh[kind].url)
    if kind == "generic":
        entry.update(json_field="status", json_equals="UP")
    collector = make_collector(entry)
    result, registry = scrape(collector)
    server = f"{kind}-1"
    assert result.success
    assert value(registry, "model_server_up", server=server) == 1.0
    mismatches = value(
        registry, "model_server_probe_requests_total", server=server, status="body_mismatch"
    )
    assert mismatches >= 1
    if kind != "kserve":  # the model list or health answer itself did not parse
        assert value(registry, "model_server_availability", server=server) == 0.0
    else:  # v2 health is status codes only: readiness stands, the version is unknown
        assert value(registry, "model_server_availability", server=server) == 1.0
        assert value(registry, "model_server_info", server=server, kind=kind, version="") == 1.0
    # answers with a bad body were still answers: timed, not counted as 2xx
    assert value(registry, "model_server_probe_duration_seconds_count", server=server) == answered(
        registry, server
    )


@pytest.mark.parametrize(
    ("field", "equals", "ready"),
    [
        ("status", "UP", 1.0),
        ("status", "DOWN", 0.0),
        ("checks.0.name", None, 1.0),
        ("checks.3.name", None, 0.0),
        ("missing", None, 0.0),
    ],
)
def test_generic_json_field_check(fresh, make_collector, field, equals, ready):
    entry = target_config("generic", fresh["generic"].url, json_field=field)
    if equals is not None:
        entry["json_equals"] = equals
    _, registry = scrape(make_collector(entry))
    assert value(registry, "model_server_availability", server="generic-1") == ready
    mismatches = value(
        registry, "model_server_probe_requests_total", server="generic-1", status="body_mismatch"
    )
    assert mismatches == (1.0 - ready)


def test_generic_expected_status_codes(fresh, make_collector):
    fresh["generic"].behaviour.mode = "not_ready"  # 503
    entry = target_config("generic", fresh["generic"].url, expected_status=[200, 503])
    _, registry = scrape(make_collector(entry))
    assert value(registry, "model_server_availability", server="generic-1") == 1.0


def test_exposition_passes_promtool(fresh, make_collector, tmp_path):
    promtool = require_binary("promtool")
    collector = make_collector(target_config("ollama", fresh["ollama"].url))
    result, registry = scrape(collector)
    body = generate_latest(registry)
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()
    samples = [s for f in result.families for s in f.samples]
    statuses = {s.labels["status"] for s in samples if "status" in s.labels}
    assert statuses == set(STATUSES)


def test_version_is_asked_once_not_every_scrape(fresh, make_collector):
    served = fresh["vllm"]
    collector = make_collector(target_config("vllm", served.url))
    for _ in range(3):
        _, registry = scrape(collector)
    assert served.behaviour.paths.count("/version") == 1
    assert served.behaviour.paths.count("/health") == 3
    info = value(registry, "model_server_info", server="vllm-1", kind="vllm", version=VERSION)
    assert info == 1.0


# -- specs and presets as data ----------------------------------------------------------------


def test_the_collector_serves_exactly_the_families_its_specs_declare(fresh, make_collector):
    declared = by_name(SPECS)
    served: set[str] = set()
    down = make_collector(target_config("ollama", f"http://127.0.0.1:{free_port()}"))
    for kind in KINDS:  # engines with a metrics page have had traffic
        fresh[kind].behaviour.traffic.serve(configured(kind)[0] if configured(kind) else "m", 3, 1)
    results = [scrape(make_collector(target_config(k, fresh[k].url)))[0] for k in KINDS]
    results.append(scrape(down)[0])
    for result in results:
        for family in result.families:
            exposed = family.name + "_total" if family.type == "counter" else family.name
            spec = declared[exposed]
            assert (family.type, family.documentation) == (spec.type.value, spec.help)
            for sample in family.samples:
                bucket = ("le",) if sample.name.endswith("_bucket") else ()
                assert tuple(sample.labels) == spec.labels + bucket
            served.add(exposed)
    assert served == set(declared)


def test_kinds_summary_and_docs_table_come_from_the_presets():
    with pytest.raises(ConfigError, match=", ".join(PRESETS)):
        load_config({"model_servers": [{"name": "m", "url": "http://127.0.0.1:1", "kind": "x"}]})
    summary = BY_NAME["model_servers"].summary
    table = TABLES["presets"]()
    for kind, preset in PRESETS.items():
        assert preset.title in summary
        assert f"| `{kind}` | " in table
    docs = (Path(__file__).parent.parent / "docs" / "model_servers.md").read_text()
    assert table in docs
