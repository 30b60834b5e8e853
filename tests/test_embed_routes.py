"""Embedded mode: which route template a request counts under (Starlette's own routing, mounts,
hosts, routes added later), a plain Starlette app with its own lifespan, and the config."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Host, Mount, Route

from exporter import embed
from exporter.api_metrics import UNMATCHED, route_template
from tests.embed_apps import no_host_config
from tests.support import scrape_url, serve_app


def test_a_plain_starlette_app_with_mounts_and_its_own_lifespan():
    lifecycle: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        lifecycle.append("app started")
        yield
        lifecycle.append("app stopped")

    async def item(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.path_params))

    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", item),
            Mount("/v1", routes=[Route("/users/{user_id}", item)]),
        ],
        lifespan=lifespan,
    )
    exporter = embed(app, config=no_host_config(), path="/ops/prometheus/")
    closed: list[bool] = []
    original_close = exporter.aclose

    async def recording_close() -> None:
        closed.append("app stopped" in lifecycle)
        await original_close()

    exporter.aclose = recording_close  # type: ignore[method-assign]
    with serve_app(app, lifespan="on") as url:
        assert lifecycle == ["app started"]
        with httpx.Client() as client:
            assert client.get(f"{url}/items/3").status_code == 200
            assert client.get(f"{url}/v1/users/ada").status_code == 200
            assert client.get(f"{url}/v1/users/ada/extra").status_code == 404
            assert client.delete(f"{url}/items/3").status_code == 405
        samples = scrape_url(f"{url}/ops/prometheus/metrics")
    assert (
        samples.value("api_requests_total", endpoint="/items/{item_id}", method="GET", status="200")
        == 1
    )
    assert (
        samples.value(
            "api_requests_total",
            endpoint="/v1/users/{user_id}",
            method="GET",
            status="200",
        )
        == 1
    )
    assert samples.value("api_requests_total", endpoint=UNMATCHED, method="GET", status="404") == 1
    assert (
        samples.value(
            "api_requests_total",
            endpoint="/items/{item_id}",
            method="DELETE",
            status="405",
        )
        == 1
    )
    # The app's own lifespan ran whole, and the exporter closed after it.
    assert lifecycle == ["app started", "app stopped"]
    assert closed == [True]


def test_config_from_a_yaml_file(tmp_path):
    config = tmp_path / "exporter.yml"
    config.write_text("collectors:\n  system: {enabled: false}\n")
    app = Starlette(routes=[Route("/ping", lambda request: JSONResponse({}))])
    embed(app, config=config)
    with serve_app(app) as url:
        assert httpx.get(f"{url}/ping").status_code == 200
        samples = scrape_url(f"{url}/prometheus/metrics")
    collectors = {
        dict(labels)["collector"]
        for name, labels in samples
        if name == "afirgen_exporter_collector_success"
    }
    assert collectors == {"process", "api"}
    labels = {"endpoint": "/ping", "method": "GET", "status": "200"}
    assert samples.value("api_requests_total", **labels) == 1


def test_routes_added_after_embed_are_labelled_by_template():
    app = FastAPI()
    embed(app, config=no_host_config())

    @app.get("/later/{thing_id}")
    async def later(thing_id: str) -> dict:
        return {"id": thing_id}

    with serve_app(app) as url:
        for thing in ("a", "b"):
            assert httpx.get(f"{url}/later/{thing}").status_code == 200
        samples = scrape_url(f"{url}/prometheus/metrics")
    labels = {"endpoint": "/later/{thing_id}", "method": "GET", "status": "200"}
    assert samples.value("api_requests_total", **labels) == 2


async def _noop(scope, receive, send) -> None:
    """An ASGI app without routes, like StaticFiles."""


ROUTES = [
    Route("/items/{item_id:int}", _noop, methods=["GET"]),
    Mount(
        "/org/{org}",
        routes=[Route("/users/{user_id}", _noop), Mount("/deep", routes=[Route("/x", _noop)])],
    ),
    Mount("/static", app=_noop),
    Host("api.example.test", Starlette(routes=[Route("/hosted/{n}", _noop)])),
]


@pytest.mark.parametrize(
    ("method", "path", "host", "template"),
    [
        ("GET", "/items/7", "h", "/items/{item_id}"),
        ("POST", "/items/7", "h", "/items/{item_id}"),  # Starlette answers 405 by this route
        ("GET", "/items/seven", "h", None),  # the int convertor does not match
        ("GET", "/org/acme/users/ada", "h", "/org/{org}/users/{user_id}"),
        ("GET", "/org/acme/deep/x", "h", "/org/{org}/deep/x"),
        ("GET", "/org/acme/nothing", "h", None),
        ("GET", "/static/css/site.css", "h", "/static/{path}"),
        ("GET", "/hosted/3", "api.example.test", "/hosted/{n}"),
        ("GET", "/hosted/3", "other.test", None),
    ],
)
def test_route_template_follows_starlette_routing(method, path, host, template):
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [(b"host", host.encode())],
    }
    assert route_template(ROUTES, scope) == template


def test_embed_refuses_the_root_path():
    with pytest.raises(ValueError, match="root"):
        embed(Starlette(), path="/")
