"""The HTTP surface: a Starlette app that can run alone or be mounted inside the backend.

`create_app(exporter)` answers `/metrics` and `/prometheus/metrics` (exact paths, no redirect),
`/probe?target=NAME`, `/sd`, `/-/healthy`, `/-/ready`, `POST /-/reload` (with
`--web.enable-lifecycle`) and `/`. Other paths, `/metrics/` included, are 404s. Mounted at
`/prometheus` in another app, `/prometheus/metrics` answers directly as well.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from collectors.base import Deadline
from exporter.auth import AuthLimits, BasicAuthMiddleware
from exporter.config import ScrapeConfig
from exporter.exposition import negotiate, wants_gzip
from exporter.landing import render_landing
from exporter.schema import ConfigError
from exporter.scrape import Unit
from exporter.state import Exporter
from exporter.webconfig import SecurityHeaders, WebConfigWatcher

log = logging.getLogger("afirgen_exporter")

TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds"


class BadRequest(Exception):
    pass


def scrape_deadline(header: str | None, settings: ScrapeConfig) -> Deadline:
    """The header's timeout (raised to the minimum, capped) minus the offset; the default when
    the header is absent or invalid."""
    seconds = settings.default_timeout_seconds
    if header:
        try:
            value = float(header)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value > 0:
            seconds = value
    seconds = min(max(seconds, settings.min_timeout_seconds), settings.max_timeout_seconds)
    budget = max(seconds - settings.timeout_offset_seconds, seconds / 2)
    return Deadline.after(budget)


#: A name from a request is echoed in an error at most this long...
ECHO_CHARS = 64
#: ...and at most this many of them.
ECHO_NAMES = 5


def echo(text: str) -> str:
    """`text` as it may appear in an answer: quoted, at most ECHO_CHARS characters of it."""
    return repr(text) if len(text) <= ECHO_CHARS else repr(text[:ECHO_CHARS]) + "..."


def echo_names(names: Sequence[str]) -> str:
    """At most ECHO_NAMES names from a request, each cut by `echo`."""
    shown = ", ".join(echo(name) for name in names[:ECHO_NAMES])
    more = len(names) - ECHO_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def select_units(exporter: Exporter, request: Request) -> list[Unit]:
    """/metrics units narrowed by `collect[]` / `exclude[]`; unknown names are a BadRequest."""
    loaded = exporter.loaded
    params = request.query_params
    collect = [n for v in params.getlist("collect[]") for n in v.split(",") if n]
    exclude = [n for v in params.getlist("exclude[]") for n in v.split(",") if n]
    if not collect and not exclude:  # what Prometheus asks: nothing to check
        return loaded.metrics_units()
    known = set(exporter.known_collectors())
    enabled = set(loaded.enabled_collectors())
    unknown = sorted(set(collect + exclude) - known)
    if unknown:
        raise BadRequest(
            f"unknown collector(s): {echo_names(unknown)}; valid: {', '.join(sorted(known))}"
        )
    not_enabled = sorted(set(collect) - enabled)
    if not_enabled:
        raise BadRequest(
            f"collector(s) not enabled or without targets: {', '.join(not_enabled)}; "
            f"enabled: {', '.join(sorted(enabled))}"
        )
    units = loaded.metrics_units()
    if collect:
        units = [u for u in units if u.collector_name in collect]
    return [u for u in units if u.collector_name not in exclude]


Endpoint = Callable[[Request], Awaitable[Response]]
_VARY = (b"vary", b"Accept, Accept-Encoding")
_GZIP = (b"content-encoding", b"gzip")


class _Scraped(Response):
    """A scrape's answer, its headers made directly (what Starlette's Response would send:
    Vary, Content-Encoding, Content-Length, Content-Type)."""

    def __init__(self, body: bytes, content_type: str, gzipped: bool) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        headers = [_VARY, _GZIP] if gzipped else [_VARY]
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"content-type", content_type.encode("latin-1")))
        self.raw_headers = headers


class _ScrapeRoutes:
    """GET and HEAD of /metrics, /prometheus/metrics and /probe straight to their endpoints;
    everything else through Starlette's router.

    Scrapes are nearly every request, and Starlette's error and exception middleware, route
    matching and response wrappers cost about as much CPU as an empty scrape's own work. An
    exception in an endpoint reaches uvicorn, which answers 500 as Starlette would (outside
    debug mode, where every request takes Starlette's path and its traceback page).
    """

    def __init__(self, app: ASGIApp, metrics: Endpoint, probe: Endpoint) -> None:
        self.app = app
        self.endpoints = {"/metrics": metrics, "/prometheus/metrics": metrics, "/probe": probe}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            endpoint = self.endpoints.get(_route_path(scope))
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path inside the app where it is mounted (Starlette's own rule, `root_path` cut)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        if path == root:
            return ""
        if path[len(root)] == "/":
            return path[len(root) :]
    return path


def create_app(
    exporter: Exporter,
    *,
    debug: bool = False,
    lifecycle: bool = False,
    web_config: WebConfigWatcher | None = None,
) -> ASGIApp:
    """The exporter's ASGI app, behind basic auth whenever the current config has users.

    `lifecycle` (`--web.enable-lifecycle`) enables `POST /-/reload`; without it the endpoint
    answers 403, as Prometheus's does, so a cross-site form cannot make every source reconnect.
    `web_config` (`--web.config.file`) adds its users and response headers; its users win over
    `web.basic_auth_users` (setting both is refused at start).
    """

    async def metrics(request: Request) -> Response:
        try:
            units = select_units(exporter, request)
        except BadRequest as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        return await _scrape(request, units, probe=False)

    async def probe(request: Request) -> Response:
        given = request.query_params.getlist("target")
        if len(given) > 1:
            return PlainTextResponse(
                f"give one ?target= at a time, got {len(given)}\n", status_code=400
            )
        name = given[0] if given else ""
        units = [u for u in exporter.loaded.units if u.target == name and name]
        if not units:
            valid = sorted({u.target for u in exporter.loaded.units})
            message = f"unknown target {echo(name)}" if name else "missing ?target=NAME"
            return PlainTextResponse(
                f"{message}; configured targets: {', '.join(valid) or 'none'}\n", status_code=400
            )
        return await _scrape(request, units, probe=True)

    async def _scrape(request: Request, units: Sequence[Unit], *, probe: bool) -> Response:
        loaded = exporter.loaded
        deadline = scrape_deadline(request.headers.get(TIMEOUT_HEADER), loaded.config.scrape)
        fmt = negotiate(
            request.headers.get("accept"), prefer_text=loaded.config.web.prefer_text_format
        )
        gzipped = wants_gzip(request.headers.get("accept-encoding"))
        body = await loaded.engine.render(units, deadline, fmt, gzipped, probe=probe)
        return _Scraped(body, fmt.content_type, gzipped)

    async def service_discovery(request: Request) -> Response:
        groups: dict[str, list[str]] = {}
        for unit in exporter.loaded.units:
            if unit.collector_name in ("system", "process"):
                continue
            groups.setdefault(unit.collector_name, []).append(unit.target)
        body = [
            {"targets": targets, "labels": {"__meta_afirgen_collector": name}}
            for name, targets in sorted(groups.items())
        ]
        return JSONResponse(body)

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("Healthy.\n")

    async def ready(request: Request) -> Response:
        return PlainTextResponse("Ready.\n")

    async def reload(request: Request) -> Response:
        if not lifecycle:
            return PlainTextResponse(
                "Lifecycle API is not enabled (start with --web.enable-lifecycle; "
                "SIGHUP always reloads).\n",
                status_code=403,
            )
        try:
            await exporter.reload()
        except ConfigError as exc:
            log.error("config reload refused, keeping the old config: %s", exc.one_line())
            return PlainTextResponse(
                "reload refused, the old config keeps serving:\n" + str(exc) + "\n",
                status_code=400,
            )
        return PlainTextResponse("Reloaded.\n")

    async def landing(request: Request) -> Response:
        return HTMLResponse(render_landing(exporter, request.scope.get("root_path", "")))

    routes = [
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
        Route("/prometheus/metrics", metrics, methods=["GET", "HEAD"]),
        Route("/probe", probe, methods=["GET", "HEAD"]),
        Route("/sd", service_discovery, methods=["GET"]),
        Route("/-/healthy", healthy, methods=["GET", "HEAD"]),
        Route("/-/ready", ready, methods=["GET", "HEAD"]),
        Route("/-/reload", reload, methods=["POST", "PUT"]),
        Route("/", landing, methods=["GET", "HEAD"]),
    ]
    starlette = Starlette(debug=debug, routes=routes)
    # `/metrics/` is a 404, never a redirect whose Location is built from the Host header
    starlette.router.redirect_slashes = False
    app: ASGIApp = starlette if debug else _ScrapeRoutes(starlette, metrics, probe)

    def limits() -> AuthLimits:
        web = exporter.config.web
        return AuthLimits(web.basic_auth_checks_burst, web.basic_auth_checks_per_minute)

    def users() -> Mapping[str, str]:
        if web_config is not None:
            from_file = web_config.current().basic_auth_users
            if from_file:
                return from_file
        return exporter.config.web.basic_auth_users

    app = BasicAuthMiddleware(app, users, limits)
    if web_config is not None:
        app = SecurityHeaders(app, web_config)
    return app
