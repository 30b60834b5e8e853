"""One stand-in per engine that serves its own metrics page, for the inference tests: the
target entry of each, and the families read from the page (import the fixtures to use them)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from collectors.model_servers import PRESETS
from collectors.model_servers.engines import ENGINES
from tests.engine_pages import Traffic
from tests.model_server_apps import Behaviour, serve_stand_ins

# re-exported: a test module imports all of its fixtures from here
from tests.model_server_apps import make_collector_fixture as make_collector_fixture

ENGINE_KINDS = tuple(ENGINES)
MODEL = "fir-summarizer"
#: the families the collector builds from an engine's metrics page
INFERENCE_FAMILIES = {
    "model_server_requests",
    "model_server_latency_seconds",
    "model_server_time_to_first_token_seconds",
    "model_server_requests_running",
    "model_server_requests_waiting",
    "model_server_tokens",
    "model_server_kv_cache_usage_ratio",
}


class Engine:
    def __init__(self, kind: str, url: str, metrics: str, behaviour: Behaviour) -> None:
        self.kind, self.url, self.metrics, self.behaviour = kind, url, metrics, behaviour

    @property
    def traffic(self) -> Traffic:
        return self.behaviour.traffic

    def entry(self, **extra) -> dict:
        entry = {"name": f"{self.kind}-1", "kind": self.kind, "url": self.url, **extra}
        if PRESETS[self.kind].metrics_port is not None:
            entry.setdefault("metrics_url", self.metrics)
        return entry


@pytest.fixture(name="engines", scope="module")
def engines_fixture() -> Iterator[dict[str, Engine]]:
    """Every engine's stand-in, once per test module (`engine` resets one for each test)."""
    with contextlib.ExitStack() as stack:
        yield {
            kind: Engine(kind, url, alone or f"{url}/metrics", behaviour)
            for kind, (url, alone, behaviour) in serve_stand_ins(stack, ENGINE_KINDS).items()
        }


@pytest.fixture(name="engine")
def engine_fixture(engines, request) -> Engine:
    """The engine the test is parametrized with (indirect=True), healthy and with no traffic."""
    found = engines[request.param]
    found.behaviour.mode = "healthy"
    found.behaviour.traffic = Traffic()
    found.behaviour.paths.clear()
    return found
