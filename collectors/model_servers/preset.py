"""What a preset is: a kind of model server's documented endpoints, with what the server
answers to each, the function that reads readiness from a probe, and the docs' words for it.
The records themselves are in `presets`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collectors.model_servers.readiness import Answer, Health, Named, Requests

if TYPE_CHECKING:
    from collectors.model_servers.target import Target


@dataclass(frozen=True)
class ServerState:
    """A server as the documented answers describe it (the tests' stand-ins serve these)."""

    ready: bool = True
    models: tuple[str, ...] = ()
    #: models the server has but that are not ready (v2: 400 per model)
    unready: frozenset[str] = frozenset()
    loaded: tuple[str, ...] = ()
    version: str = "1.0.0"

    def model_ready(self, model: str) -> bool:
        return model in self.models and model not in self.unready


#: What a server answers to a request: (status, JSON body or None for an empty body).
Documented = Callable[[ServerState, str], tuple[int, Any]]
Ask = Callable[[Requests, "Target", Answer, bool, Named], Health]


@dataclass(frozen=True)
class Endpoint:
    """One documented request: its path (`{model}` for a model name, "" for the URL itself)."""

    path: str
    answer: Documented
    #: asked on the target's `management_url` (TorchServe), not its `url`
    management: bool = False


@dataclass(frozen=True)
class Preset:
    #: The `kind:` value that picks this preset.
    name: str
    #: The engine's name as the catalog summary lists it.
    title: str
    #: Every request the preset may send; the first is the liveness request.
    endpoints: tuple[Endpoint, ...]
    #: Readiness, per-model readiness and version from the liveness answer and more requests.
    ask: Ask
    #: The docs' preset table: when the server counts as ready, per model, where the version is.
    ready_when: str
    per_model: str
    version: str
    #: The engine's own Prometheus metrics endpoint: a path under the URL (None: it has none)...
    metrics_path: str | None = None
    #: ...on this port instead of the URL's, where the engine serves metrics apart (Triton 8002,
    #: TorchServe 8082).
    metrics_port: int | None = None
    #: ...and that port speaks plain HTTP even when the API is behind HTTPS (Triton): an https
    #: target must name its `metrics_url` (neither the scheme nor where to send the target's
    #: credentials in clear is guessed).
    metrics_plain_http: bool = False
    #: The engine labels its page's series by the model it serves (vLLM `model_name`): read
    #: before `ask`, the page's names spare the model list request (see `ask_vllm`).
    models_on_page: bool = False

    @property
    def liveness(self) -> str:
        return self.endpoints[0].path
