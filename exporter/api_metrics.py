"""The backend's own request metrics: a pure ASGI middleware labelling by route template.

- `ApiMetrics` holds the prometheus_client objects. They live in a private `CollectorRegistry`
  (never the global one), or, when `PROMETHEUS_MULTIPROC_DIR` is set, in prometheus_client's
  multiprocess files, so that whichever worker answers a scrape serves the sum of all workers.
- `ApiCollector` is the `SourceCollector` that hands those families to the scrape engine.
- `ApiMetricsMiddleware` times each HTTP request to the end of its response body.

The duration histogram keeps classic and native (exponential) buckets
(collectors/native_histogram.py): protobuf scrapers get both, text and OpenMetrics the classic
ones. In multiprocess mode it is prometheus_client's (classic buckets only): native buckets
cannot be summed over workers' files. When an OpenTelemetry span is active, the request's
trace and span ids become exemplars of the counter and the histogram (exporter/tracing.py).

`endpoint` is the matched route template (`/api/fir/{fir_id}`, mount prefixes included), never
the raw path: every unmatched request shares the value `UNMATCHED`. `method` is one of the
HTTP methods or `other`. A request whose handler raises counts as status 500.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.metrics_core import Metric
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collectors.base import ScrapeContext, SourceCollector
from collectors.native_histogram import Histograms, NativeSettings
from exporter.tracing import trace_exemplar

log = logging.getLogger("afirgen_exporter")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The endpoint label of every request that matched no route.
UNMATCHED = "<unmatched>"

#: Methods kept as they are; anything else is counted as `other` (the label stays bounded).
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)

#: Request duration buckets in seconds: prometheus_client's defaults, which span API latencies.
DEFAULT_BUCKETS: tuple[float, ...] = Histogram.DEFAULT_BUCKETS

#: Messages that can end a response: a body chunk without `more_body`, or a file sent by path
#: (the ASGI `http.response.pathsend` extension some servers offer to FileResponse).
_BODY_ENDS = frozenset({"http.response.body", "http.response.pathsend"})

FAMILY_NAMES = frozenset(
    {"api_requests_total", "api_request_duration_seconds", "api_requests_in_progress"}
)


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus_client really runs in multiprocess mode."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return None
    if not getattr(values.ValueClass, "_multiprocess", False):
        log.warning(
            "%s is set but prometheus_client was imported before it was: API metrics stay "
            "per process (set the variable before the server starts)",
            MULTIPROC_ENV,
        )
        return None
    return path


class ApiMetrics:
    """The three API families, in a private registry or in multiprocess files."""

    def __init__(
        self,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        native: NativeSettings | None = NativeSettings(),  # noqa: B008 - frozen, shared
        multiproc_dir: str | None = None,
    ) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry()
        # In multiprocess mode the values go to files; the objects must not sit in a registry,
        # a MultiProcessCollector reads every worker's files instead.
        owner = None if multiproc_dir else self.registry
        self.requests = Counter(
            "api_requests",
            "HTTP requests answered by the application, by route template, method and status.",
            ["endpoint", "method", "status"],
            registry=owner,
        )
        name = "api_request_duration_seconds"
        documentation = "Time from the request's arrival to the end of its response body."
        self.duration: Histogram | Histograms
        #: Our own histogram with native buckets, served by families() (not in a registry).
        self.native_duration: Histograms | None = None
        if multiproc_dir:
            self.duration = Histogram(
                name, documentation, ["endpoint", "method"], buckets=buckets, registry=None
            )
        else:
            self.duration = self.native_duration = Histograms(
                name, documentation, ["endpoint", "method"], buckets=buckets, native=native
            )
        self.in_progress = Gauge(
            "api_requests_in_progress",
            "HTTP requests being handled now (summed over live workers in multiprocess mode).",
            ["endpoint", "method"],
            multiprocess_mode="livesum",
            registry=owner,
        )
        if multiproc_dir:
            multiprocess.MultiProcessCollector(self.registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
        self._timing: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._counts: dict[tuple[str, str, str], Any] = {}

    @classmethod
    def from_environment(cls, **kwargs: Any) -> ApiMetrics:
        return cls(multiproc_dir=multiprocess_dir(), **kwargs)

    def timing(self, endpoint: str, method: str) -> tuple[Any, Any]:
        """The (histogram, gauge) children for a label pair; cached, `labels()` is not free."""
        key = (endpoint, method)
        children = self._timing.get(key)
        if children is None:
            children = (self.duration.labels(*key), self.in_progress.labels(*key))
            self._timing[key] = children
        return children

    def count(
        self, endpoint: str, method: str, status: str, exemplar: dict[str, str] | None = None
    ) -> None:
        key = (endpoint, method, status)
        child = self._counts.get(key)
        if child is None:
            child = self._counts[key] = self.requests.labels(*key)
        child.inc(1, exemplar)

    @property
    def exemplars(self) -> bool:
        """Exemplars are kept per process only (prometheus_client's files have none)."""
        return not self.multiproc_dir

    def families(self) -> Iterator[Metric]:
        """The API families as they stand (summed over workers in multiprocess mode)."""
        for family in self.registry.collect():
            if family.name not in FAMILY_NAMES and family.name + "_total" not in FAMILY_NAMES:
                continue  # another library's multiprocess metrics in the same directory
            yield family
        if self.native_duration is not None:
            yield self.native_duration.family()

    def mark_process_dead(self) -> None:
        """Drop this worker's in-progress files when it stops (multiprocess mode only)."""
        if self.multiproc_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiproc_dir)  # type: ignore[no-untyped-call]


class ApiCollector(SourceCollector):
    """Serves the middleware's families through the exporter's scrape engine."""

    collector = "api"

    def __init__(self, metrics: ApiMetrics, name: str = "api") -> None:
        super().__init__(name)
        self.metrics = metrics

    def fetch(self, ctx: ScrapeContext) -> Iterable[Metric]:
        return list(self.metrics.families())


def route_path(scope: Scope) -> str:
    """The path the router matches on: `path` without `root_path` (as Starlette does it)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    """The template of the route Starlette would pick for `scope`, or None if none matches.

    Mirrors `Router.app`: the first full match wins, else the first partial one (which Starlette
    answers with 405). Mounts and hosts are followed into their own routes.
    """
    partial: tuple[BaseRoute, Scope] | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return _template(route, scope, child)
        if match is Match.PARTIAL and partial is None:
            partial = (route, child)
    if partial is not None:
        return _template(partial[0], scope, partial[1])
    return None


def _template(route: BaseRoute, scope: Scope, child: Scope) -> str | None:
    path_format: str = getattr(route, "path_format", "")
    inner = getattr(route, "routes", None)
    if not inner:  # a Route, or a Mount of an app without routes (static files...)
        return path_format or None
    prefix = path_format.removesuffix("/{path}")
    below = route_template(inner, {**scope, **child})
    return None if below is None else prefix + below


class ApiMetricsMiddleware:
    """Counts and times every HTTP request of the app it wraps, by route template."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ApiMetrics,
        routes: Sequence[BaseRoute] | None = None,
        exclude_prefixes: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        #: The app's routes (a live list: routes added later are seen); None takes them from
        #: the `app` Starlette puts in the scope.
        self.routes = routes
        self.exclude = tuple(p.rstrip("/") for p in exclude_prefixes if p.rstrip("/"))

    def excluded(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.exclude)

    def endpoint(self, scope: Scope) -> str:
        routes = self.routes
        if routes is None:
            routes = getattr(scope.get("app"), "routes", None) or ()
        return route_template(routes, scope) or UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.excluded(route_path(scope)):
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "other"
        endpoint = self.endpoint(scope)
        histogram, gauge = self.metrics.timing(endpoint, method)
        status = "500"
        finished = False
        with_exemplars = self.metrics.exemplars
        # The span may be started outside this middleware (seen now) or inside it (seen when
        # the response starts, which runs in the inner app's context).
        exemplar = trace_exemplar() if with_exemplars else None
        started = time.perf_counter()
        gauge.inc()

        def finish(final_status: str) -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            histogram.observe(time.perf_counter() - started, exemplar)
            gauge.dec()
            self.metrics.count(endpoint, method, final_status, exemplar)

        async def send_timed(message: Message) -> None:
            nonlocal status, exemplar
            if message["type"] == "http.response.start":
                status = str(message["status"])
                if exemplar is None and with_exemplars:
                    exemplar = trace_exemplar()
            await send(message)
            if message["type"] in _BODY_ENDS and not message.get("more_body", False):
                finish(status)

        try:
            await self.app(scope, receive, send_timed)
        except BaseException:
            finish("500")
            raise
        finish(status)
