"""vLLM readiness from the page the collector reads anyway: a configured model the server's own
metrics page names (`model_name`) is served, and the model list (`/v1/models`) is not asked;
anything else is asked in the same scrape. Nothing is kept between scrapes, so a model the
server stops serving, a page that breaks and a server that goes down all read at once. The
stand-in is a real uvicorn server on loopback whose state the test changes between scrapes.
"""

from __future__ import annotations

import gzip

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.engine_pages import Traffic, page
from tests.model_server_apps import (
    Behaviour,
    make_app,
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
    make_metrics_app,
    scrape,
    value,
)
from tests.support import serve_app

SERVER = "llm"


def ready(registry, model: str) -> float | None:
    return value(registry, "model_server_model_ready", server=SERVER, model=model)


def asked(behaviour: Behaviour) -> list[str]:
    """The paths the scrape asked for, cleared for the next one."""
    paths = list(behaviour.paths)
    behaviour.paths.clear()
    return paths


def test_a_model_the_page_names_is_ready_without_the_model_list_and_reads_0_once_gone(
    make_collector,
):
    behaviour = Behaviour()
    behaviour.traffic.serve("ner", success=3)
    with serve_app(make_app("vllm", behaviour)) as url:
        collector = make_collector({"name": SERVER, "kind": "vllm", "url": url, "models": ["ner"]})
        result, registry = scrape(collector)
        assert result.success
        assert ready(registry, "ner") == 1.0
        assert value(registry, "model_server_availability", server=SERVER) == 1.0
        paths = asked(behaviour)
        assert "/health" in paths and "/metrics" in paths
        assert "/v1/models" not in paths  # the page named it: no model list this scrape

        # the server restarts serving another model: its page and its list no longer have ner
        behaviour.mode, behaviour.traffic = "model_missing", Traffic()
        behaviour.traffic.serve("fir-summarizer", success=1)
        result, registry = scrape(collector)
        assert result.success
        assert ready(registry, "ner") == 0.0
        assert value(registry, "model_server_availability", server=SERVER) == 0.0
        assert "/v1/models" in asked(behaviour)  # not named by the page: asked at once

        # the page breaks while the list has ner again: the list decides, in this scrape
        behaviour.mode, behaviour.traffic = "healthy", Traffic(mode="error")
        result, registry = scrape(collector)
        assert ready(registry, "ner") == 1.0
        assert value(registry, "model_server_metrics_up", server=SERVER) == 0.0
        assert "/v1/models" in asked(behaviour)

        # the page names ner but the engine is dead (/health 503): not ready
        behaviour.mode, behaviour.traffic = "not_ready", Traffic()
        behaviour.traffic.serve("ner", success=1)
        result, registry = scrape(collector)
        assert result.success
        assert ready(registry, "ner") == 0.0
        assert value(registry, "model_server_availability", server=SERVER) == 0.0

        behaviour.mode = "healthy"
        _, registry = scrape(collector)
        assert ready(registry, "ner") == 1.0
    # the server is gone: nothing read before is served
    result, registry = scrape(collector, seconds=2.0)
    assert not result.success
    assert ready(registry, "ner") == 0.0
    assert value(registry, "model_server_up", server=SERVER) == 0.0
    assert value(registry, "model_server_availability", server=SERVER) == 0.0


def test_an_alias_the_page_does_not_name_is_looked_up_in_the_model_list(make_collector):
    # vLLM labels its page with its first --served-model-name only; the others are aliases
    behaviour = Behaviour()
    behaviour.traffic.serve("ner", success=2)
    with serve_app(make_app("vllm", behaviour)) as url:
        entry = {"name": SERVER, "kind": "vllm", "url": url, "models": ["ner", "fir-summarizer"]}
        collector = make_collector(entry)
        _, registry = scrape(collector)
        assert ready(registry, "ner") == ready(registry, "fir-summarizer") == 1.0
        assert "/v1/models" in asked(behaviour)
        behaviour.mode = "model_missing"  # the list loses ner; the page still names it
        _, registry = scrape(collector)
        assert ready(registry, "fir-summarizer") == 1.0
        assert ready(registry, "ner") == 0.0  # the list, asked this scrape, decides


def test_without_configured_models_the_list_is_asked_every_scrape(make_collector):
    behaviour = Behaviour()
    behaviour.traffic.serve("ner", success=1)
    with serve_app(make_app("vllm", behaviour)) as url:
        collector = make_collector({"name": SERVER, "kind": "vllm", "url": url})
        for _ in range(2):
            _, registry = scrape(collector)
            assert ready(registry, "ner") == ready(registry, "fir-summarizer") == 1.0
            assert "/v1/models" in asked(behaviour)


@pytest.mark.parametrize("listed", [True, False])
def test_a_page_on_another_server_never_stands_in_for_the_model_list(make_collector, listed):
    api, elsewhere = Behaviour(mode="healthy" if listed else "model_missing"), Behaviour()
    elsewhere.traffic.serve("ner", success=5)  # that page names ner, whatever the API serves
    with (
        serve_app(make_app("vllm", api)) as url,
        serve_app(make_metrics_app("vllm", elsewhere)) as other,
    ):
        entry = {"name": SERVER, "kind": "vllm", "url": url, "models": ["ner"],
                 "metrics_url": f"{other}/metrics"}  # fmt: skip
        _, registry = scrape(make_collector(entry))
    assert "/v1/models" in api.paths
    assert ready(registry, "ner") == (1.0 if listed else 0.0)
    assert value(registry, "model_server_metrics_up", server=SERVER) == 1.0


def test_a_page_compressed_without_being_asked_is_decoded(make_collector):
    # the probe asks for no compression (no Accept-Encoding); a server that gzips anyway is read
    traffic, seen = Traffic(), []
    traffic.serve("ner", success=4)

    async def metrics(request: Request) -> Response:
        seen.append(request.headers.get("accept-encoding"))
        body = gzip.compress(page("vllm", traffic).encode())
        return Response(body, headers={"Content-Encoding": "gzip"}, media_type="text/plain")

    app = make_app("vllm", Behaviour())
    app.router.routes.insert(0, Route("/metrics", metrics))
    with serve_app(app) as url:
        entry = {"name": SERVER, "kind": "vllm", "url": url, "models": ["ner"]}
        _, registry = scrape(make_collector(entry))
    assert seen == [None]
    assert value(registry, "model_server_metrics_up", server=SERVER) == 1.0
    labels = {"server": SERVER, "model": "ner", "status": "success"}
    assert value(registry, "model_server_requests_total", **labels) == 4
    assert ready(registry, "ner") == 1.0
