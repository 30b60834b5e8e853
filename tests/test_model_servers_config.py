"""Model-server targets as configured: errors that name the key and hide secrets, TLS files
that are not certificates, and the engine metrics URL each preset derives."""

from __future__ import annotations

import re

import pytest

from collectors.model_servers import PRESETS
from collectors.model_servers.inference import metrics_url
from exporter.config import load_config
from exporter.schema import ConfigError
from tests.model_server_targets import tls_files_fixture  # noqa: F401 - the tls_files fixture


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
