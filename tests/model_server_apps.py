"""Loopback stand-ins for the model servers, one Starlette app per preset, built from the preset
records themselves (`collectors.model_servers.PRESETS`): every documented endpoint of a kind
answers what its record says the server answers. A new preset gets its stand-in for free.

A `Behaviour` switches the server between the states the tests need: `healthy`, `not_ready`
(the server's own health says not ready and model `ner` is not ready), `model_missing` (the
server does not have `ner`), `slow` (every answer held past the probe timeout), `slow_models`
(only per-model endpoints slow) and `malformed` (JSON bodies that do not parse).
Each request's client port is recorded, so a test can tell whether connections were reused.
Kinds with engine metrics also serve their metrics page (`tests/engine_pages.py`) from the
behaviour's `traffic`: on the API app where the preset reads it there, else on the app of
`make_metrics_app` (Triton's and TorchServe's own metrics port).
`DripServer` (tests/loopback_sources.py) answers one byte at a time; `make_collector`,
`scrape` and `value` are what the model-server tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collectors.base import CollectionResult, Deadline
from collectors.model_servers import PRESETS, ModelServerCollector, build
from collectors.model_servers.preset import Endpoint, ServerState
from exporter.config import load_config
from tests.engine_pages import Traffic, page
from tests.loopback_sources import DripServer as DripServer  # the model-server tests' import
from tests.support import registry_of, serve_app

MODELS = ("fir-summarizer", "ner")
#: Ollama: what /api/ps lists as loaded in memory
LOADED = ("fir-summarizer",)
VERSION = "2.41.0"
#: where the generic stand-in answers (a generic target's URL is the health URL itself)
GENERIC_PATH = "/healthz"
BROKEN_JSON = b'{"status": "Healthy", '


@dataclass
class Behaviour:
    mode: str = "healthy"
    slow_seconds: float = 3.0
    client_ports: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    #: headers every request must carry (auth tests); 401 otherwise
    required_headers: dict[str, str] = field(default_factory=dict)
    #: what the engine's metrics page reports
    traffic: Traffic = field(default_factory=Traffic)

    def state(self) -> ServerState:
        models = tuple(m for m in MODELS if not (self.mode == "model_missing" and m == "ner"))
        not_ready = self.mode == "not_ready"
        unready = frozenset({"ner"}) if not_ready else frozenset()
        return ServerState(not not_ready, models, unready, LOADED, VERSION)


def route(endpoint: Endpoint, behaviour: Behaviour) -> Route:
    per_model = "{model}" in endpoint.path
    slow_in = ("slow", "slow_models") if per_model else ("slow",)

    async def answer(request: Request) -> Response:
        if request.client is not None:
            behaviour.client_ports.append(request.client.port)
        behaviour.paths.append(request.url.path)
        for name, value in behaviour.required_headers.items():
            if request.headers.get(name) != value:
                return JSONResponse({"error": "unauthorized"}, status_code=401)
        if behaviour.mode in slow_in:
            await asyncio.sleep(behaviour.slow_seconds)
        status, body = endpoint.answer(behaviour.state(), request.path_params.get("model", ""))
        if body is None:
            return Response(status_code=status)
        content = BROKEN_JSON if behaviour.mode == "malformed" else json.dumps(body).encode()
        return Response(content, status_code=status, media_type="application/json")

    return Route(endpoint.path or GENERIC_PATH, answer)


def metrics_route(kind: str, behaviour: Behaviour) -> Route:
    async def metrics(request: Request) -> Response:
        behaviour.paths.append(request.url.path)
        for name, value in behaviour.required_headers.items():
            if request.headers.get(name) != value:
                return Response("unauthorized", status_code=401)
        if behaviour.mode == "slow":
            await asyncio.sleep(behaviour.slow_seconds)
        if behaviour.traffic.mode == "error":
            return Response("engine error", status_code=500)
        return Response(page(kind, behaviour.traffic), media_type="text/plain; version=0.0.4")

    return Route(PRESETS[kind].metrics_path or "/metrics", metrics)


def make_app(kind: str, behaviour: Behaviour) -> Starlette:
    """The stand-in for one preset kind; the management API (TorchServe) on the same app, and
    the metrics page where the engine serves it on its API port."""
    preset = PRESETS[kind]
    routes = [route(e, behaviour) for e in preset.endpoints]
    if preset.metrics_path and preset.metrics_port is None:
        routes.append(metrics_route(kind, behaviour))
    return Starlette(routes=routes)


def make_metrics_app(kind: str, behaviour: Behaviour) -> Starlette:
    """The engine's metrics page alone (what Triton and TorchServe serve on their own port)."""
    return Starlette(routes=[metrics_route(kind, behaviour)])


def serve_stand_in(
    stack: contextlib.ExitStack, kind: str, behaviour: Behaviour
) -> tuple[str, str | None]:
    """Serve the stand-in of `kind` until `stack` closes: (its API URL, the URL of its metrics
    page where the engine serves it on a port of its own, else None)."""
    url = stack.enter_context(serve_app(make_app(kind, behaviour), timeout_graceful_shutdown=1))
    if PRESETS[kind].metrics_port is None:
        return url, None
    alone = stack.enter_context(serve_app(make_metrics_app(kind, behaviour)))
    return url, f"{alone}/metrics"


def serve_stand_ins(
    stack: contextlib.ExitStack, kinds: Iterable[str]
) -> dict[str, tuple[str, str | None, Behaviour]]:
    """One stand-in per kind, each with a Behaviour of its own, served until `stack` closes:
    kind -> (its API URL, its metrics page's URL on a port of its own or None, its Behaviour)."""
    served = {}
    for kind in kinds:
        behaviour = Behaviour()
        url, metrics = serve_stand_in(stack, kind, behaviour)
        served[kind] = (url, metrics, behaviour)
    return served


def collector_for(
    entry: dict, env: dict[str, str] | None = None, base_dir="."
) -> ModelServerCollector:
    config = load_config({"model_servers": [entry]}, env=env or {}, base_dir=base_dir)
    return build(None, config.targets["model_servers"][0])


@pytest.fixture(name="make_collector")
def make_collector_fixture() -> Iterator:
    """Collectors made in a test, closed after it (import this into a test module to use it)."""
    made: list[ModelServerCollector] = []

    def factory(entry: dict, **kwargs) -> ModelServerCollector:
        collector = collector_for(entry, **kwargs)
        made.append(collector)
        return collector

    yield factory
    for collector in made:
        collector.close()


def scrape(
    collector: ModelServerCollector, seconds: float = 5.0
) -> tuple[CollectionResult, CollectorRegistry]:
    """One collection: its result, and its families in a registry (`value` reads it)."""
    result = collector.run(Deadline.after(seconds))
    return result, registry_of(result.families)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)
