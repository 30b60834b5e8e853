"""What presets are written with: the answers of one probe, what it learned, and the small
checks every preset shares. No network code here (that is `probe`), so the preset table can be
read (by the catalog, the docs, the tests' stand-ins) without importing httpx.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

#: Model names become label values: longer ones are cut.
MAX_MODEL_NAME = 128


#: Models the engine's own metrics page names in this scrape (read from the server itself, for
#: presets whose page labels series by model, `Preset.models_on_page`); empty when not read.
Named = frozenset[str]


class ProbeFailed(Exception):
    """A request that got no HTTP answer; `outcome` is a transport failure status."""

    def __init__(self, outcome: str, path: str) -> None:
        super().__init__(f"{outcome} on {path or '/'}")
        self.outcome = outcome
        self.path = path


class BodyMismatch(Exception):
    """An answer whose body is not what the server's API documents."""


@dataclass
class Answer:
    status: int
    body: bytes
    index: int  # its place in the probe's outcome list

    @property
    def ok(self) -> bool:
        return self.status == 200


class Requests(Protocol):
    """The requests of one probe, as presets use them (implemented by `probe.Probe`)."""

    def get(self, path: str, *, base_url: str | None = None) -> Answer: ...

    def json(self, answer: Answer, path: str) -> Any: ...

    def mismatch(self, answer: Answer, path: str) -> None: ...

    def get_json(self, path: str, *, base_url: str | None = None) -> tuple[Answer, Any]: ...


@dataclass
class Health:
    """What one scrape learned about a server (after its liveness request answered)."""

    ready: bool = False
    #: model -> 1/0 ready
    models: dict[str, float] = field(default_factory=dict)
    #: model -> 1/0 loaded in memory (Ollama)
    loaded: dict[str, float] = field(default_factory=dict)
    version: str | None = None  # None: not asked this scrape


def model_path(template: str, model: str) -> str:
    """A per-model path (`/v2/models/{model}/ready`) for one model, the name URL-quoted."""
    return template.replace("{model}", quote(model, safe=""))


def tolerant(check: Callable[[], bool]) -> bool:
    """A readiness check whose request failed or whose body did not fit counts as not ready."""
    try:
        return check()
    except (ProbeFailed, BodyMismatch, KeyError, TypeError, ValueError, AttributeError):
        return False


def answers_ok(probe: Requests, path: str) -> bool:
    """A status-code-only check (the v2 health API): 200 ready, anything else not."""
    try:
        return probe.get(path).ok
    except ProbeFailed:
        return False


def items(data: Any, key: str) -> list[Any]:
    """`data[key]` as a list (the model lists of the OpenAI-style and Ollama APIs)."""
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise BodyMismatch(key)
    return value


def models_present(
    configured: Sequence[str],
    served: Sequence[str],
    answered: bool,
    normalise: Callable[[str], str] = str,
) -> dict[str, float]:
    """Configured models: 1 when the server lists them. None configured: what it lists."""
    if not configured:
        return {name[:MAX_MODEL_NAME]: 1.0 for name in served}
    listed = {normalise(s) for s in served}
    return {m: 1.0 if answered and normalise(m) in listed else 0.0 for m in configured}


def version_from(probe: Requests, path: str, key: str) -> str | None:
    try:
        _, data = probe.get_json(path)
    except (ProbeFailed, BodyMismatch):
        return None
    if isinstance(data, dict) and key in data:
        return str(data[key])[:64]
    return None


def json_path(data: Any, path: str) -> Any:
    """`a.b.0.c` into nested JSON objects and arrays; KeyError/IndexError when absent."""
    for part in path.split("."):
        if isinstance(data, list):
            data = data[int(part)]
        elif isinstance(data, dict):
            data = data[part]
        else:
            raise KeyError(part)
    return data


def json_field_holds(body: bytes, dotted: str, wanted: str | None) -> bool:
    """The generic check: `dotted` exists in the JSON body (and, if given, equals `wanted`)."""
    try:
        value = json_path(json.loads(body), dotted)
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    text = value if isinstance(value, str) else json.dumps(value)
    return wanted is None or text == wanted
