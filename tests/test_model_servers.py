"""The model-server collector against real HTTP servers on loopback, one per preset."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from collectors.catalog import BY_NAME
from collectors.model_servers import (
    LATENCY_BUCKETS,
    PRESETS,
    SPECS,
    STATUSES,
    TABLES,
)
from collectors.model_servers.readiness import model_path
from collectors.specs import by_name
from exporter.config import load_config
from exporter.schema import ConfigError
from tests.engine_pages import Traffic
from tests.model_server_apps import (
    GENERIC_PATH,
    LOADED,
    MODELS,
    VERSION,
    Behaviour,
    make_app,
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
    scrape,
    serve_stand_in,
    value,
)
from tests.support import free_port, require_binary, samples_of, serve_app

KINDS = tuple(PRESETS)
#: the models each preset is configured with, where not both MODELS (Ollama with a tag on one)
CONFIGURED = {"generic": (), "tgi": MODELS[:1], "ollama": ("fir-summarizer", "ner:latest")}
#: kinds whose API has no version to report
UNVERSIONED = ("generic", "torchserve")
#: how each kind says "not ready", and the configured models that are then not ready
NOT_READY = {
    "generic": ("not_ready", ()),
    "kserve": ("not_ready", ("ner",)),
    "triton": ("not_ready", ("ner",)),
    "torchserve": ("not_ready", MODELS),
    "tgi": ("not_ready", MODELS[:1]),
    "vllm": ("not_ready", MODELS),
    "ollama": ("model_missing", ("ner:latest",)),  # Ollama's API has no "not ready" answer
}


def configured(kind: str) -> tuple[str, ...]:
    return CONFIGURED.get(kind, MODELS)


class Served:
    def __init__(self, url: str, behaviour: Behaviour) -> None:
        self.url = url
        self.behaviour = behaviour


#: API URL -> the metrics page of its stand-in, for kinds that serve it on a port of its own
METRICS_AT: dict[str, str] = {}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Served]]:
    with contextlib.ExitStack() as stack:
        served = {}
        for kind in KINDS:
            behaviour = Behaviour()
            url, metrics = serve_stand_in(stack, kind, behaviour)
            served[kind] = Served(url, behaviour)
            if metrics is not None:
                METRICS_AT[url] = metrics
        yield served


@pytest.fixture
def fresh(servers: dict[str, Served]) -> dict[str, Served]:
    for s in servers.values():
        s.behaviour.mode = "healthy"
        s.behaviour.client_ports.clear()
        s.behaviour.paths.clear()
        s.behaviour.required_headers.clear()
        s.behaviour.traffic = Traffic()
    return servers


def target_config(kind: str, url: str, **extra) -> dict:
    entry = {"name": f"{kind}-1", "kind": kind, "url": url, **extra}
    if kind == "generic":
        entry["url"] = url + GENERIC_PATH
    elif configured(kind) and "models" not in extra:
        entry["models"] = list(configured(kind))
    if kind == "torchserve":
        entry.setdefault("management_url", url)
    if PRESETS[kind].metrics_port is not None:  # never dial the real port 8002/8082 here
        entry.setdefault("metrics_url", METRICS_AT.get(url, f"{url}/metrics"))
    return entry


def answered(registry: CollectorRegistry, server: str) -> float:
    return sum(
        value(registry, "model_server_probe_requests_total", server=server, status=s) or 0.0
        for s in ("2xx", "3xx", "4xx", "5xx", "body_mismatch")
    )


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


# -- unreachable: the only collector failure ------------------------------------------------


def test_refused_connection_fails_the_collector_with_up_zero(make_collector):
    url = f"http://127.0.0.1:{free_port()}"
    collector = make_collector(target_config("kserve", url))
    result, registry = scrape(collector)
    assert not result.success
    assert result.reason == "refused"
    assert value(registry, "model_server_up", server="kserve-1") == 0.0
    assert value(registry, "model_server_availability", server="kserve-1") == 0.0
    for model in MODELS:
        assert value(registry, "model_server_model_ready", server="kserve-1", model=model) == 0.0
    assert (
        value(registry, "model_server_probe_requests_total", server="kserve-1", status="refused")
        == 1
    )
    # the counters keep counting across failed scrapes
    _, registry = scrape(collector)
    assert (
        value(registry, "model_server_probe_requests_total", server="kserve-1", status="refused")
        == 2
    )


def test_slow_server_times_out_within_the_target_timeout(fresh, make_collector):
    served = fresh["tgi"]
    served.behaviour.mode = "slow"
    served.behaviour.slow_seconds = 5.0
    collector = make_collector(target_config("tgi", served.url))
    result, registry = scrape(collector, seconds=0.5)
    assert not result.success
    assert result.reason == "timeout"
    assert value(registry, "model_server_up", server="tgi-1") == 0.0
    assert (
        value(registry, "model_server_probe_requests_total", server="tgi-1", status="timeout") == 1
    )
    assert value(registry, "model_server_probe_duration_seconds_count", server="tgi-1") == 0


def test_slow_model_endpoint_makes_models_not_ready_but_server_up(fresh, make_collector):
    served = fresh["kserve"]
    served.behaviour.mode = "slow_models"
    served.behaviour.slow_seconds = 5.0
    collector = make_collector(target_config("kserve", served.url))
    result, registry = scrape(collector, seconds=1.0)
    assert result.success
    assert value(registry, "model_server_up", server="kserve-1") == 1.0
    assert value(registry, "model_server_availability", server="kserve-1") == 0.0
    assert (
        value(registry, "model_server_probe_requests_total", server="kserve-1", status="timeout")
        == 1
    )
    for model in MODELS:
        assert value(registry, "model_server_model_ready", server="kserve-1", model=model) == 0.0


# -- connections, auth, TLS ---------------------------------------------------------------


def test_keep_alive_connection_is_reused_across_scrapes(fresh, make_collector):
    served = fresh["vllm"]
    collector = make_collector(target_config("vllm", served.url))
    for _ in range(3):
        result, _ = scrape(collector)
        assert result.success
    assert len(served.behaviour.paths) >= 3 * 2
    assert len(set(served.behaviour.client_ports)) == 1


def test_histogram_accumulates_across_scrapes(fresh, make_collector):
    collector = make_collector(target_config("generic", fresh["generic"].url))
    for _ in range(3):
        _, registry = scrape(collector)
    assert value(registry, "model_server_probe_duration_seconds_count", server="generic-1") == 3
    buckets = [
        value(
            registry, "model_server_probe_duration_seconds_bucket", server="generic-1", le=repr(b)
        )
        for b in LATENCY_BUCKETS
    ]
    assert buckets == sorted(buckets)
    inf = value(
        registry, "model_server_probe_duration_seconds_bucket", server="generic-1", le="+Inf"
    )
    assert inf == 3


def test_bearer_token_from_file_and_custom_headers_are_sent(fresh, make_collector, tmp_path):
    served = fresh["generic"]
    served.behaviour.required_headers = {"authorization": "Bearer s3cret-token", "x-api-key": "k1"}
    (tmp_path / "token").write_text("s3cret-token\n")
    entry = target_config(
        "generic",
        served.url,
        bearer_token_file="token",
        headers={"X-Api-Key": "${API_KEY}"},
    )
    collector = make_collector(entry, env={"API_KEY": "k1"}, base_dir=tmp_path)
    _, registry = scrape(collector)
    assert value(registry, "model_server_availability", server="generic-1") == 1.0
    assert "s3cret-token" not in repr(collector.target)

    without = make_collector(target_config("generic", served.url))
    _, registry = scrape(without)
    assert value(registry, "model_server_availability", server="generic-1") == 0.0
    assert (
        value(registry, "model_server_probe_requests_total", server="generic-1", status="4xx") == 1
    )


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    openssl = require_binary("openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_verification(tls_files, make_collector):
    cert, key = tls_files
    behaviour = Behaviour()
    app = make_app("vllm", behaviour)
    tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key), "timeout_graceful_shutdown": 1}
    with serve_app(app, **tls) as url:
        assert url.startswith("https://")
        strict = make_collector(target_config("vllm", url))
        result, registry = scrape(strict)
        assert not result.success and result.reason == "tls"
        assert (
            value(registry, "model_server_probe_requests_total", server="vllm-1", status="tls") == 1
        )

        with_ca = make_collector(target_config("vllm", url, ca_file=str(cert)))
        result, _ = scrape(with_ca)
        assert result.success

        mutual = make_collector(
            target_config("vllm", url, ca_file=str(cert), cert_file=str(cert), key_file=str(key))
        )
        result, _ = scrape(mutual)
        assert result.success

        insecure = make_collector(target_config("vllm", url, tls_verify=False))
        result, registry = scrape(insecure)
        assert result.success
        assert value(registry, "model_server_availability", server="vllm-1") == 1.0
        for collector in (strict, with_ca, mutual, insecure):
            collector.close()


def test_tls_files_that_are_not_certificates_are_config_errors(tls_files, tmp_path):
    cert, key = tls_files
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    base = {"name": "m", "url": "https://127.0.0.1:1"}
    cases = [
        ({"ca_file": str(junk)}, "model_servers[0].ca_file: "),
        (
            {"cert_file": str(junk), "key_file": str(key)},
            "model_servers[0]: cert_file and key_file",
        ),
        (
            {"cert_file": str(cert), "key_file": str(junk)},
            "model_servers[0]: cert_file and key_file",
        ),
    ]
    for extra, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config({"model_servers": [{**base, **extra}]}, env={})
    load_config(
        {
            "model_servers": [
                {**base, "ca_file": str(cert), "cert_file": str(cert), "key_file": str(key)}
            ]
        },
        env={},
    )


# -- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"url": "http://u:hunter22@127.0.0.1:1"}, "model_servers[0].url: must not hold a pass"),
        ({"url": "ftp://127.0.0.1"}, "model_servers[0].url: not an http"),
        ({"url": "http://127.0.0.1:1", "kind": "sagemaker"}, "model_servers[0].kind: must be one"),
        ({"url": "http://127.0.0.1:1", "json_equals": "UP"}, "json_equals needs json_field"),
        (
            {"url": "http://127.0.0.1:1", "kind": "vllm", "expected_status": [200, 503]},
            "for kind generic only",
        ),
        ({"url": "http://127.0.0.1:1", "timeout_seconds": 0}, "timeout_seconds: must be greater"),
        ({"url": "http://127.0.0.1:1", "expected_status": [999]}, "999 is not an HTTP status"),
        ({"url": "http://127.0.0.1:1", "bearer_token": "${NOPE}"}, "NOPE is not set"),
        ({"url": "http://127.0.0.1:1", "modles": ["a"]}, "did you mean 'models'"),
    ],
)
def test_config_errors_name_the_key_and_never_echo_secrets(entry, message):
    with pytest.raises(ConfigError) as caught:
        load_config({"model_servers": [{"name": "m", **entry}]}, env={})
    text = str(caught.value)
    assert message in text
    assert "hunter22" not in text


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


def test_failure_log_line_is_redacted_and_bounded(make_collector, caplog):
    port = free_port()
    entry = target_config(
        "generic",
        f"http://127.0.0.1:{port}",
        bearer_token="${TOKEN}",
        headers={"X-Api-Key": "key-material-9"},
    )
    collector = make_collector(entry, env={"TOKEN": "tok-material-7"})
    with caplog.at_level("WARNING", logger="afirgen_exporter.collector"):
        result, _ = scrape(collector)
    assert result.reason == "refused"
    text = caplog.text
    assert "reason=refused" in text
    assert "tok-material-7" not in text and "key-material-9" not in text


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
