"""The app's own calls to model servers, counted where the app makes them (embedded mode).

For a server whose engine publishes no metrics (Ollama, a generic HTTP model API) the exporter
reports no inference numbers of its own; the app that calls it knows them. `ModelCalls` hands
out httpx transports that wrap the app's own, count each call by server, model and outcome
and time it to the end of its response body (streamed generations included), and a collector
that serves those counts as `model_server_requests_total{server,model,status}` and
`model_server_latency_seconds{server,model}`:

    calls = ModelCalls()
    ollama = httpx.AsyncClient(base_url=OLLAMA_URL, transport=calls.async_transport("ollama"))
    embed(app, engine=engine, collectors=[calls.collector()])

`model` is the transport's `model` if given, else the `"model"` field of the request's JSON body
(Ollama's and the OpenAI-style APIs carry one), else `unknown`; at most `max_models` names per
server, the rest counted as `other`. `status` is `success` for an answer below 400, `failure`
for 4xx, 5xx or no answer (the transport's exception is re-raised unchanged). Only answered
calls are timed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.metrics_core import Metric

from collectors.base import ScrapeContext, SourceCollector
from collectors.model_servers.families import LATENCY, REQUESTS
from exporter.api_metrics import multiprocess_dir

#: Latency buckets in seconds: 50 ms to 2 minutes, for generations that stream for a while.
#: (Classic buckets for now; the one place that observes is `ModelCalls.observe`.)
DEFAULT_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: A request body larger than this is not parsed for its model name.
MAX_PARSED_BODY = 256 * 1024
UNKNOWN = "unknown"
OTHER = "other"
FAMILY_NAMES = frozenset({REQUESTS.name, LATENCY.name})


class ModelCalls:
    """The counts of the app's calls to model servers, and the transports that make them."""

    def __init__(
        self,
        *,
        max_models: int = 20,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        multiproc_dir: str | None = None,
    ) -> None:
        self.max_models = max_models
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry()
        owner = None if multiproc_dir else self.registry  # see exporter.api_metrics
        self.requests = Counter(
            REQUESTS.name.removesuffix("_total"), REQUESTS.help, list(REQUESTS.labels),
            registry=owner,
        )  # fmt: skip
        self.latency = Histogram(
            LATENCY.name, LATENCY.help, list(LATENCY.labels), buckets=buckets, registry=owner
        )
        if multiproc_dir:
            multiprocess.MultiProcessCollector(self.registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()
        self._models: dict[str, set[str]] = {}

    @classmethod
    def from_environment(cls, **kwargs: Any) -> ModelCalls:
        """Multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set (as the API metrics)."""
        return cls(multiproc_dir=multiprocess_dir(), **kwargs)

    def transport(
        self, server: str, inner: httpx.BaseTransport | None = None, *, model: str | None = None
    ) -> httpx.BaseTransport:
        """A transport for `httpx.Client(transport=...)` that counts calls to `server`."""
        return CountingTransport(self, server, inner or httpx.HTTPTransport(), model)

    def async_transport(
        self,
        server: str,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        model: str | None = None,
    ) -> httpx.AsyncBaseTransport:
        """A transport for `httpx.AsyncClient(transport=...)` that counts calls to `server`."""
        return AsyncCountingTransport(self, server, inner or httpx.AsyncHTTPTransport(), model)

    def model_of(self, server: str, request: httpx.Request, given: str | None) -> str:
        """The model label: given, else the JSON body's `model`, within the budget."""
        name = given or _body_model(request) or UNKNOWN
        with self._lock:
            seen = self._models.setdefault(server, set())
            if name in seen:
                return name
            if len(seen) >= self.max_models:
                return OTHER
            seen.add(name)
            return name

    def observe(self, server: str, model: str, answered: bool, ok: bool, seconds: float) -> None:
        """Count one call and, if it was answered, time it (the only place that observes)."""
        self.requests.labels(server, model, "success" if ok else "failure").inc()
        if answered:
            self.latency.labels(server, model).observe(seconds)

    def families(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if family.name not in FAMILY_NAMES and family.name + "_total" not in FAMILY_NAMES:
                continue
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family

    def collector(self, name: str = "app_calls") -> SourceCollector:
        """The collector to hand to `embed(..., collectors=[...])`."""
        return ModelCallsCollector(self, name)


class ModelCallsCollector(SourceCollector):
    """Serves the app's call counts through the exporter's scrape engine."""

    collector = "model_calls"

    def __init__(self, calls: ModelCalls, name: str) -> None:
        super().__init__(name)
        self.calls = calls

    def fetch(self, ctx: ScrapeContext) -> Iterable[Metric]:
        return list(self.calls.families())


def _body_model(request: httpx.Request) -> str | None:
    try:
        body = request.content
    except httpx.RequestNotRead:  # a streamed upload: not read here
        return None
    if not body or len(body) > MAX_PARSED_BODY or b'"model"' not in body:
        return None
    try:
        value = json.loads(body).get("model")
    except (ValueError, AttributeError):
        return None
    return str(value)[:128] if isinstance(value, str) and value else None


class _Timed:
    """Observes a call once: when its body is closed, or at once when it failed."""

    def __init__(self, calls: ModelCalls, server: str, model: str) -> None:
        self.calls, self.server, self.model = calls, server, model
        self.started = time.perf_counter()
        self.done = False

    def finish(self, answered: bool, ok: bool) -> None:
        if not self.done:
            self.done = True
            seconds = time.perf_counter() - self.started
            self.calls.observe(self.server, self.model, answered, ok, seconds)


class _TimedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, timed: _Timed, ok: bool) -> None:
        self.inner, self.timed, self.ok = inner, timed, ok

    def __iter__(self) -> Iterator[bytes]:
        yield from self.inner

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.timed.finish(True, self.ok)


class _AsyncTimedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, timed: _Timed, ok: bool) -> None:
        self.inner, self.timed, self.ok = inner, timed, ok

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.timed.finish(True, self.ok)


class CountingTransport(httpx.BaseTransport):
    def __init__(
        self, calls: ModelCalls, server: str, inner: httpx.BaseTransport, model: str | None
    ) -> None:
        self.calls, self.server, self.inner, self.model = calls, server, inner, model

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        model = self.calls.model_of(self.server, request, self.model)
        timed = _Timed(self.calls, self.server, model)
        try:
            response = self.inner.handle_request(request)
        except BaseException:
            timed.finish(False, False)
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _TimedStream(response.stream, timed, response.status_code < 400)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncCountingTransport(httpx.AsyncBaseTransport):
    def __init__(
        self, calls: ModelCalls, server: str, inner: httpx.AsyncBaseTransport, model: str | None
    ) -> None:
        self.calls, self.server, self.inner, self.model = calls, server, inner, model

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        model = self.calls.model_of(self.server, request, self.model)
        timed = _Timed(self.calls, self.server, model)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException:
            timed.finish(False, False)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _AsyncTimedStream(response.stream, timed, response.status_code < 400)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
