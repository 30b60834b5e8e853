"""Embedded mode: one call mounts the exporter inside the backend's own Starlette/FastAPI app.

    from exporter import embed
    embed(app, engine=engine, redis=redis_client)   # /prometheus/metrics now answers

The collectors are handed the app's own objects (its SQLAlchemy engine, so pool metrics describe
the pool the app really uses; its Redis client), plus whatever `config` configures, plus the API
request metrics of `ApiMetricsMiddleware`. The exporter's sources are closed when the app shuts
down (the app's own lifespan still runs, around it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from collectors.base import SourceCollector
from collectors.native_histogram import NativeSettings
from exporter.api_metrics import ApiCollector, ApiMetrics, ApiMetricsMiddleware
from exporter.app import create_app
from exporter.config import Config, load_config, read_config
from exporter.state import Exporter

ConfigLike = Config | str | os.PathLike[str] | None


def as_config(config: ConfigLike) -> Config:
    """A Config as given, read from a YAML file path, or the defaults for None."""
    if config is None:
        return load_config(None)
    if isinstance(config, Config):
        return config
    return read_config(Path(config))


def app_collectors(
    engine: Any = None,
    redis: Any = None,
    native: NativeSettings | None = NativeSettings(),  # noqa: B008 - frozen
    database_options: Any = None,
) -> list[SourceCollector]:
    """Collectors reading the app's own engine (its pool, server and statements, their
    durations with `native` buckets, `collectors.database` options) and Redis client
    (modules imported on need)."""
    found: list[SourceCollector] = []
    if engine is not None:
        from collectors.database import from_engine

        found.append(from_engine(engine, options=database_options, native=native))
    if redis is not None:
        from collectors.redis import from_client

        found.append(from_client(redis))
    return found


def mount_path(path: str) -> str:
    """`/prometheus` style: a leading slash, no trailing one, not the root."""
    cleaned = "/" + path.strip("/")
    if cleaned == "/":
        raise ValueError("path must not be the root: the exporter would shadow the whole app")
    return cleaned


def close_on_shutdown(app: Starlette, close: Callable[[], Any]) -> None:
    """Run `close()` after the app's own lifespan (or on_shutdown handlers) has finished."""
    router = app.router
    inner = router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        try:
            async with inner(asgi_app) as state:
                yield state
        finally:
            await close()

    router.lifespan_context = lifespan


def embed(
    app: Starlette,
    *,
    engine: Any = None,
    redis: Any = None,
    config: ConfigLike = None,
    path: str = "/prometheus",
    native_histograms: NativeSettings | None = NativeSettings(),  # noqa: B008 - frozen
    collectors: Sequence[SourceCollector] = (),
) -> Exporter:
    """Mount the exporter at `path` in `app`, instrument its requests; return the Exporter.

    `engine` is a SQLAlchemy Engine (its pool, server and own statements are read), `redis`
    a redis-py client; `config` a Config, a YAML file path, or None for the defaults.
    `native_histograms` sets the schema, bucket limit and zero threshold of the native
    buckets of the request and statement duration histograms (None: classic buckets only);
    `collectors` are more collectors of the app's own, served with the rest (e.g.
    `exporter.model_calls.ModelCalls.collector()`). Call it before the app starts serving
    (Starlette refuses middleware added later).
    """
    prefix = mount_path(path)
    metrics = ApiMetrics.from_environment(native=native_histograms)
    loaded = as_config(config)
    own = app_collectors(engine, redis, native_histograms, loaded.options("database"))
    extra = [*own, ApiCollector(metrics), *collectors]
    exporter = Exporter(loaded, extra_collectors=extra)
    # First in the route list: a catch-all route of the app must not shadow the scrape path.
    app.router.routes.insert(0, Mount(prefix, app=create_app(exporter)))
    app.add_middleware(
        ApiMetricsMiddleware, metrics=metrics, routes=app.router.routes, exclude_prefixes=[prefix]
    )

    async def close() -> None:
        metrics.mark_process_dead()
        await exporter.aclose()

    close_on_shutdown(app, close)
    return exporter
