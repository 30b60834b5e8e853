"""One stand-in per preset kind for the model-server readiness tests, the target entry each kind
is configured with there, and a throwaway TLS certificate (import the fixtures to use them)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collectors.model_servers import PRESETS
from tests.engine_pages import Traffic
from tests.model_server_apps import GENERIC_PATH, MODELS, Behaviour, serve_stand_ins, value

# re-exported: a test module imports all of its fixtures from here
from tests.model_server_apps import make_collector_fixture as make_collector_fixture
from tests.support import require_binary

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


@pytest.fixture(name="servers", scope="module")
def servers_fixture() -> Iterator[dict[str, Served]]:
    """Every preset's stand-in, once per test module (`fresh` resets them for each test)."""
    with contextlib.ExitStack() as stack:
        served = {}
        for kind, (url, metrics, behaviour) in serve_stand_ins(stack, KINDS).items():
            served[kind] = Served(url, behaviour)
            if metrics is not None:
                METRICS_AT[url] = metrics
        yield served


@pytest.fixture(name="fresh")
def fresh_fixture(servers: dict[str, Served]) -> dict[str, Served]:
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


@pytest.fixture(name="tls_files", scope="module")
def tls_files_fixture(tmp_path_factory) -> tuple[Path, Path]:
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
