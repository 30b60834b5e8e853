"""Loopback stand-ins for the model servers, answering as their public API documentation says.

One Starlette app per preset. A `Behaviour` switches it between the states the tests need:
`healthy`, `not_ready` (503 from the server health endpoint, 400 from a v2 model endpoint, a
model missing from a model list), `slow` (every answer held past the probe timeout),
`slow_models` (only per-model endpoints slow), `model_missing` (vLLM lists one model less)
and `malformed` (JSON bodies that do not parse).
Each request's client port is recorded, so a test can tell whether connections were reused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

MODELS = ("fir-summarizer", "ner")
BROKEN_JSON = b'{"status": "Healthy", '


@dataclass
class Behaviour:
    mode: str = "healthy"
    slow_seconds: float = 3.0
    client_ports: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    #: headers every request must carry (auth tests); 401 otherwise
    required_headers: dict[str, str] = field(default_factory=dict)


def json_or_broken(behaviour: Behaviour, body: object, status: int = 200) -> Response:
    if behaviour.mode == "malformed":
        return Response(BROKEN_JSON, status_code=status, media_type="application/json")
    return JSONResponse(body, status_code=status)


def make_app(kind: str, behaviour: Behaviour) -> Starlette:
    """The app for one preset kind (`generic`, `kserve`, `triton`, `torchserve`, ...)."""

    def route(path: str, answer, *, slow_in: tuple[str, ...] = ("slow",)) -> Route:
        async def endpoint(request: Request) -> Response:
            if request.client is not None:
                behaviour.client_ports.append(request.client.port)
            behaviour.paths.append(request.url.path)
            for name, value in behaviour.required_headers.items():
                if request.headers.get(name) != value:
                    return JSONResponse({"error": "unauthorized"}, status_code=401)
            if behaviour.mode in slow_in:
                await asyncio.sleep(behaviour.slow_seconds)
            return answer(request)

        return Route(path, endpoint)

    b = behaviour
    not_ready = lambda: b.mode == "not_ready"  # noqa: E731 - read at request time
    routes: list[Route]
    if kind == "generic":
        routes = [
            route(
                "/healthz",
                lambda r: json_or_broken(
                    b,
                    {"status": "DOWN" if not_ready() else "UP", "checks": [{"name": "db"}]},
                    503 if not_ready() else 200,
                ),
            )
        ]
    elif kind in ("kserve", "triton"):
        name = "triton" if kind == "triton" else "kserve"

        def model_ready(r: Request) -> Response:
            model = r.path_params["model"]
            ok = model in MODELS and not (not_ready() and model == "ner")
            # KServe/Triton answer a model-ready request with 200 or a 4xx (Triton: 400)
            return Response(status_code=200 if ok else 400)

        routes = [
            route("/v2/health/live", lambda r: Response(status_code=200)),
            route("/v2/health/ready", lambda r: Response(status_code=503 if not_ready() else 200)),
            route("/v2/models/{model}/ready", model_ready, slow_in=("slow", "slow_models")),
            route(
                "/v2",
                lambda r: json_or_broken(
                    b, {"name": name, "version": "2.41.0", "extensions": ["model_repository"]}
                ),
            ),
        ]
    elif kind == "torchserve":

        def ping(r: Request) -> Response:
            if b.mode == "malformed":
                return PlainTextResponse("Healthy")
            if not_ready():
                return JSONResponse({"status": "Unhealthy"}, status_code=500)
            return JSONResponse({"status": "Healthy"})

        def describe_model(r: Request) -> Response:
            model = r.path_params["model"]
            if model not in MODELS:
                return JSONResponse(
                    {"code": 404, "type": "ModelNotFoundException"}, status_code=404
                )
            return JSONResponse(
                [{"modelName": model, "workers": [{"id": "9000", "status": "READY"}]}]
            )

        routes = [route("/ping", ping), route("/models/{model}", describe_model)]
    elif kind == "tgi":
        routes = [
            route("/health", lambda r: Response(status_code=503 if not_ready() else 200)),
            route(
                "/info",
                lambda r: json_or_broken(
                    b,
                    {
                        "model_id": "fir-summarizer",
                        "model_dtype": "torch.float16",
                        "max_concurrent_requests": 128,
                        "version": "2.4.1",
                        "sha": "abc",
                    },
                ),
            ),
        ]
    elif kind == "vllm":

        def models(r: Request) -> Response:
            listed = [m for m in MODELS if not (b.mode == "model_missing" and m == "ner")]
            data = [{"id": m, "object": "model", "owned_by": "vllm"} for m in listed]
            return json_or_broken(b, {"object": "list", "data": data})

        routes = [
            # vLLM's /health: 200 with an empty body, 503 once the engine is dead
            route("/health", lambda r: Response(status_code=503 if not_ready() else 200)),
            route("/v1/models", models),
            route("/version", lambda r: json_or_broken(b, {"version": "0.6.4"})),
        ]
    elif kind == "ollama":

        def tags(r: Request) -> Response:
            names = ["llama3.2:latest"] + ([] if not_ready() else ["fir-summarizer:7b"])
            return json_or_broken(
                b, {"models": [{"name": n, "model": n, "size": 1} for n in names]}
            )

        routes = [
            route("/api/version", lambda r: json_or_broken(b, {"version": "0.5.7"})),
            route("/api/tags", tags),
            route(
                "/api/ps",
                lambda r: json_or_broken(
                    b, {"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest"}]}
                ),
            ),
        ]
    else:
        raise ValueError(kind)
    return Starlette(routes=routes)
