"""Loopback stand-ins for the model servers, one Starlette app per preset, built from the preset
records themselves (`collectors.model_servers.PRESETS`): every documented endpoint of a kind
answers what its record says the server answers. A new preset gets its stand-in for free.

A `Behaviour` switches the server between the states the tests need: `healthy`, `not_ready`
(the server's own health says not ready and model `ner` is not ready), `model_missing` (the
server does not have `ner`), `slow` (every answer held past the probe timeout), `slow_models`
(only per-model endpoints slow) and `malformed` (JSON bodies that do not parse).
Each request's client port is recorded, so a test can tell whether connections were reused.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collectors.model_servers import PRESETS
from collectors.model_servers.preset import Endpoint, ServerState

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


def make_app(kind: str, behaviour: Behaviour) -> Starlette:
    """The stand-in for one preset kind; the management API (TorchServe) on the same app."""
    return Starlette(routes=[route(e, behaviour) for e in PRESETS[kind].endpoints])
