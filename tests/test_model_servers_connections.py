"""The model-server collector's connections to real HTTP servers on loopback: refused, slow,
kept alive, authenticated, over TLS; and what it logs when one fails."""

from __future__ import annotations

from collectors.model_servers import LATENCY_BUCKETS
from tests.model_server_apps import MODELS, Behaviour, make_app, scrape, value
from tests.model_server_targets import (
    fresh_fixture,  # noqa: F401 - the fresh fixture
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
    servers_fixture,  # noqa: F401 - the servers fixture (fresh resets it)
    target_config,
    tls_files_fixture,  # noqa: F401 - the tls_files fixture
)
from tests.support import free_port, serve_app

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


def test_an_http_server_with_its_metrics_on_https_verifies_them(tls_files, make_collector):
    """Only a client with an https URL gets a TLS context: one on `metrics_url` alone counts."""
    cert, key = tls_files
    tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key), "timeout_graceful_shutdown": 1}
    page = Behaviour()
    page.traffic.serve("fir-summarizer", 5)
    with (
        serve_app(make_app("vllm", Behaviour())) as api,
        serve_app(make_app("vllm", page), **tls) as tls_url,
    ):
        assert api.startswith("http://") and tls_url.startswith("https://")
        metrics_url = f"{tls_url}/metrics"
        strict = make_collector(target_config("vllm", api, metrics_url=metrics_url))
        trusted = make_collector(
            target_config("vllm", api, metrics_url=metrics_url, ca_file=str(cert))
        )
        _, refused = scrape(strict)
        _, read = scrape(trusted)
        strict.close()
        trusted.close()
    assert value(refused, "model_server_metrics_up", server="vllm-1") == 0.0  # not trusted
    assert value(read, "model_server_metrics_up", server="vllm-1") == 1.0
    served = {"server": "vllm-1", "model": "fir-summarizer", "status": "success"}
    assert value(read, "model_server_requests_total", **served) == 5


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
