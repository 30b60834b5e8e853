"""The presets: one record per kind of model server, written from its public API documentation.

A record holds everything known about its server: its documented endpoints (the first is the
liveness request, the only one that decides `model_server_up`) with what the server answers
to each, the function that turns a probe's answers into readiness, the text of the docs'
preset table, and the engine's own metrics endpoint. The `kind` choices, the catalog summary,
the docs table and the tests' stand-in servers are all read from `PRESETS`: adding a preset
is one record here (and its test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collectors.model_servers.preset import Endpoint, Preset
from collectors.model_servers.readiness import (
    MAX_MODEL_NAME,
    Answer,
    BodyMismatch,
    Health,
    Named,
    ProbeFailed,
    Requests,
    answers_ok,
    items,
    json_field_holds,
    model_path,
    models_present,
    tolerant,
    version_from,
)

if TYPE_CHECKING:
    from collectors.model_servers.target import Target


def _status(ready: bool, not_ready: int) -> int:
    return 200 if ready else not_ready


# -- generic: any HTTP health URL -----------------------------------------------------------

GENERIC_HEALTH = Endpoint(
    "",
    lambda s, _: (
        _status(s.ready, 503),
        {"status": "UP" if s.ready else "DOWN", "checks": [{"name": "db"}]},
    ),
)


def ask_generic(
    probe: Requests, target: Target, live: Answer, want_version: bool, named: Named
) -> Health:
    """An expected status and, optionally, a JSON field check."""
    ready = live.status in target.expected_status
    if ready and target.json_field is not None:
        if not json_field_holds(live.body, target.json_field, target.json_equals):
            probe.mismatch(live, "")
            ready = False
    return Health(ready=ready)


# -- KServe Open Inference Protocol v2 (KServe, MLServer, Triton) ---------------------------

V2_LIVE = Endpoint("/v2/health/live", lambda s, _: (200, None))
V2_READY = Endpoint("/v2/health/ready", lambda s, _: (_status(s.ready, 503), None))
V2_MODEL = Endpoint("/v2/models/{model}/ready", lambda s, m: (_status(s.model_ready(m), 400), None))
V2_METADATA = Endpoint(
    "/v2", lambda s, _: (200, {"name": "server", "version": s.version, "extensions": []})
)


def ask_v2(
    probe: Requests, target: Target, live: Answer, want_version: bool, named: Named
) -> Health:
    """Live, ready, each model's ready endpoint, the version from the server metadata."""
    health = Health()
    if not live.ok:
        health.models = dict.fromkeys(target.models, 0.0)
        return health
    server_ready = answers_ok(probe, V2_READY.path)
    for model in target.models:
        ready = answers_ok(probe, model_path(V2_MODEL.path, model))
        health.models[model] = 1.0 if ready else 0.0
    health.ready = server_ready and all(health.models.values())
    if want_version:
        health.version = version_from(probe, V2_METADATA.path, "version")
    return health


V2_ENDPOINTS = (V2_LIVE, V2_READY, V2_MODEL, V2_METADATA)
V2_READY_WHEN = "`/v2/health/ready` 200 and every model ready"
V2_PER_MODEL = "`/v2/models/{m}/ready`: 200 ready, 4xx (Triton: 400) not"

# -- TorchServe -----------------------------------------------------------------------------

TORCHSERVE_PING = Endpoint(
    "/ping",
    lambda s, _: (_status(s.ready, 500), {"status": "Healthy" if s.ready else "Unhealthy"}),
)
TORCHSERVE_MODEL = Endpoint(
    "/models/{model}",
    lambda s, m: (
        (200, [{"modelName": m, "workers": [{"id": "9000", "status": "READY"}]}])
        if s.model_ready(m)
        else (404, {"code": 404, "type": "ModelNotFoundException"})
    ),
    management=True,
)


def ask_torchserve(
    probe: Requests, target: Target, live: Answer, want_version: bool, named: Named
) -> Health:
    """`/ping` answers {"status": "Healthy"}; model workers from the management API."""
    health = Health()
    try:
        status = probe.json(live, TORCHSERVE_PING.path).get("status") if live.ok else None
    except (BodyMismatch, AttributeError):
        status = None
    health.ready = status == "Healthy"
    management = target.management_url
    for model in target.models:
        if management is None or not health.ready:
            health.models[model] = 1.0 if health.ready else 0.0
            continue

        def workers_ready(m: str = model) -> bool:
            path = model_path(TORCHSERVE_MODEL.path, m)
            _, data = probe.get_json(path, base_url=management)
            entries = data if isinstance(data, list) else []
            return any(w.get("status") == "READY" for e in entries for w in e.get("workers", ()))

        health.models[model] = 1.0 if tolerant(workers_ready) else 0.0
    health.ready = health.ready and all(health.models.values())
    return health


# -- Text Generation Inference ---------------------------------------------------------------

#: TGI's and vLLM's health: 200 with an empty body, 503 while not ready / once the engine died.
HEALTH = Endpoint("/health", lambda s, _: (_status(s.ready, 503), None))
TGI_INFO = Endpoint(
    "/info",
    lambda s, _: (
        200,
        {"model_id": s.models[0] if s.models else "", "version": s.version, "sha": "abc"},
    ),
)


def ask_tgi(
    probe: Requests, target: Target, live: Answer, want_version: bool, named: Named
) -> Health:
    """`/health` 200 or 503; the one model it serves and its version from `/info`."""
    health = Health()
    info: dict[str, Any] = {}
    if want_version or target.models or live.ok:
        try:
            _, data = probe.get_json(TGI_INFO.path)
            info = data if isinstance(data, dict) else {}
        except (ProbeFailed, BodyMismatch):
            info = {}
    served = str(info.get("model_id", ""))[:MAX_MODEL_NAME]
    for model in target.models or ((served,) if served else ()):
        health.models[model] = 1.0 if live.ok and model == served else 0.0
    health.ready = live.ok and all(health.models.values())
    if want_version and "version" in info:
        health.version = str(info["version"])
    return health


# -- vLLM's OpenAI-compatible server --------------------------------------------------------

VLLM_MODELS = Endpoint(
    "/v1/models",
    lambda s, _: (
        200,
        {"object": "list", "data": [{"id": m, "object": "model"} for m in s.models]},
    ),
)
VLLM_VERSION = Endpoint("/version", lambda s, _: (200, {"version": s.version}))


def ask_vllm(
    probe: Requests, target: Target, live: Answer, want_version: bool, named: Named
) -> Health:
    """`/health` (503 once the engine is dead), served models from `/v1/models`, `/version`.

    vLLM labels every series of its metrics page with the model it serves (`model_name`, its
    first `--served-model-name`); the collector reads that page in the same scrape, from the
    same server, before asking this. A configured model the page names is served: the model
    list is not asked. Any other (an alias, a LoRA adapter, a page that could not be read, no
    `models` configured) is looked up in `/v1/models` in this scrape, so a model the server no
    longer serves reads 0 at the next scrape either way.
    """
    health = Health()
    served: list[str] = []
    needed = not target.models or not named.issuperset(target.models)
    if live.ok and not needed:
        served = list(target.models)
    elif live.ok:
        try:
            _, data = probe.get_json(VLLM_MODELS.path)
            served = [str(m["id"]) for m in items(data, "data")]
        except (ProbeFailed, BodyMismatch, KeyError, TypeError):
            served = []
    health.models = models_present(target.models, served, live.ok)
    health.ready = live.ok and all(health.models.values())
    if want_version:
        health.version = version_from(probe, VLLM_VERSION.path, "version")
    return health


# -- Ollama ---------------------------------------------------------------------------------


def ollama_tag(name: str) -> str:
    """Ollama names a model without a tag `NAME:latest`."""
    return name if ":" in name else f"{name}:latest"


def _ollama_list(names: tuple[str, ...]) -> dict[str, Any]:
    return {"models": [{"name": ollama_tag(n), "model": ollama_tag(n)} for n in names]}


OLLAMA_VERSION = Endpoint("/api/version", lambda s, _: (200, {"version": s.version}))
OLLAMA_TAGS = Endpoint("/api/tags", lambda s, _: (200, _ollama_list(s.models)))
OLLAMA_RUNNING = Endpoint("/api/ps", lambda s, _: (200, _ollama_list(s.loaded)))


def ollama_names(probe: Requests, path: str) -> list[str] | None:
    try:
        _, data = probe.get_json(path)
        return [str(m.get("name") or m["model"]) for m in items(data, "models")]
    except (ProbeFailed, BodyMismatch, KeyError, TypeError, AttributeError):
        return None


def ask_ollama(
    probe: Requests, target: Target, live: Answer, want_version: bool, named: Named
) -> Health:
    """`/api/version` (liveness and version), models present from `/api/tags`, models loaded
    in memory from `/api/ps`. A present model is ready: Ollama loads it on first use."""
    health = Health()
    if not live.ok:
        health.models = dict.fromkeys(target.models, 0.0)
        return health
    try:
        version = probe.json(live, OLLAMA_VERSION.path).get("version")
    except (BodyMismatch, AttributeError):
        return Health(models=dict.fromkeys(target.models, 0.0))
    present = ollama_names(probe, OLLAMA_TAGS.path)
    running = ollama_names(probe, OLLAMA_RUNNING.path)
    health.models = models_present(target.models, present or [], present is not None, ollama_tag)
    names = health.models if target.models else {n: 1.0 for n in (present or [])}
    running_set = {ollama_tag(n) for n in running or []}
    health.loaded = {m: 1.0 if ollama_tag(m) in running_set else 0.0 for m in names}
    health.ready = present is not None and all(health.models.values())
    if want_version and version is not None:
        health.version = str(version)
    return health


# -- the table ------------------------------------------------------------------------------

_PRESETS = (
    Preset(
        "generic", "generic", (GENERIC_HEALTH,), ask_generic,
        ready_when="status in `expected_status` and the JSON check holds",
        per_model="-", version="-",
    ),
    Preset(
        "kserve", "KServe v2", V2_ENDPOINTS, ask_v2,
        ready_when=V2_READY_WHEN, per_model=V2_PER_MODEL, version="`version` of `GET /v2`",
        metrics_path="/metrics",
    ),
    Preset(
        "triton", "Triton", V2_ENDPOINTS, ask_v2,
        ready_when=V2_READY_WHEN, per_model=V2_PER_MODEL, version="`version` of `GET /v2`",
        metrics_path="/metrics", metrics_port=8002, metrics_plain_http=True,
    ),
    Preset(
        "torchserve", "TorchServe", (TORCHSERVE_PING, TORCHSERVE_MODEL), ask_torchserve,
        ready_when='200 with `{"status": "Healthy"}` (it answers 500 `Unhealthy`) and every '
        "model ready",
        per_model="with `management_url`: `GET /models/{m}`, ready if a worker is `READY`; "
        "without: the server's health",
        version="- (the inference API has none)",
        metrics_path="/metrics", metrics_port=8082,
    ),
    Preset(
        "tgi", "TGI", (HEALTH, TGI_INFO), ask_tgi,
        ready_when="200 (503 while not ready) and configured models served",
        per_model="`model_id` of `GET /info` equals the model", version="`version` of `/info`",
        metrics_path="/metrics",
    ),
    Preset(
        "vllm", "vLLM", (HEALTH, VLLM_MODELS, VLLM_VERSION), ask_vllm,
        ready_when="200 (503 when the engine is dead) and configured models served",
        per_model="named by its metrics page (`model_name`), else listed in `GET /v1/models` "
        "(`data[].id`)",
        version="`version` of `GET /version`",
        metrics_path="/metrics", models_on_page=True,
    ),
    Preset(
        "ollama", "Ollama", (OLLAMA_VERSION, OLLAMA_TAGS, OLLAMA_RUNNING), ask_ollama,
        ready_when="answered, parses, and configured models present",
        per_model="present in `GET /api/tags`; also `model_server_model_loaded` from "
        "`GET /api/ps`",
        version="`/api/version`",
    ),
)  # fmt: skip

#: preset name (the `kind:` value) -> preset, in the order the docs and the catalog list them.
PRESETS: dict[str, Preset] = {preset.name: preset for preset in _PRESETS}


def summary() -> str:
    """The catalog's one-line description of the collector, naming every engine."""
    engines = ", ".join(p.title for p in _PRESETS if p.name != "generic")
    return (
        f"HTTP model servers ({engines}, generic): liveness, readiness per model, version, "
        "and inference traffic from each engine's own metrics endpoint (httpx)."
    )


def preset_table() -> str:
    """The docs' preset table (python -m exporter.docs_tables)."""
    head = "| kind | liveness | ready when | per model | version | engine metrics |"
    lines = [head, "|" + " --- |" * 6]
    for preset in _PRESETS:
        liveness = f"`{preset.liveness}`" if preset.liveness else "`GET url`"
        metrics = "-"
        if preset.metrics_path:
            port = f"port {preset.metrics_port} " if preset.metrics_port else ""
            metrics = f"{port}`{preset.metrics_path}`"
        cells = [f"`{preset.name}`", liveness, preset.ready_when, preset.per_model, preset.version]
        cells.append(metrics)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
