"""The standalone exporter's memory: a library it never uses is not imported.

Only `afirgen-exporter` itself (exporter/cli.py) uses this; an application that embeds the
exporter keeps its imports as they are.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # at run time it imports importlib.resources, tempfile, shutil, random
    import importlib.abc

#: redis-py (8.1 here: `redis.observability`) imports the OpenTelemetry metrics API and SDK at
#: import time only to note whether its own client-side OTel metrics could be turned on, and
#: the SDK's resources import psutil: 2 MiB of RSS (measured, benchmarks/memory.py) in every
#: exporter with a Redis target, for a feature the exporter never turns on. (The exporter's
#: own use of OpenTelemetry, exemplars in embedded mode, is `opentelemetry.trace`.)
#: httpx's `__init__` tries its command line (`httpx._main`: click, pygments, rich) and
#: gives up without rich: click and pygments stay imported, 1 MiB in every exporter with an
#: HTTP collector (model servers).
UNUSED = ("opentelemetry.metrics", "opentelemetry.sdk.metrics", "httpx._main")


@contextlib.contextmanager
def unused_imports_absent() -> Iterator[None]:
    """While the block runs, importing a module of UNUSED raises ImportError, as if it were
    not installed (a None in `sys.modules` stops the import system before it loads anything,
    parent packages included). Modules already imported are left alone."""
    blocked = [name for name in UNUSED if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


#: Imported by a library for a feature the standalone exporter does not use: made on first use
#: instead (importlib.util.LazyLoader). uvicorn.config imports logging.config (with
#: logging.handlers and socketserver) to apply a `log_config`, and exporter/server.py passes
#: none: 0.5 MiB of RSS (measured, the full stack and the empty exporter alike).
LAZY = ("logging.config",)


class _LazyFinder:
    """A meta path finder that gives the modules it is made for a LazyLoader: the module
    object exists at once, its code runs when one of its attributes is first read."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = set(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        self.names.discard(fullname)  # once: a reload finds the module as usual
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def load_lazily(names: Iterable[str] = LAZY) -> None:
    """Modules of `names` not imported yet run their code on first use, not at import.

    Only for modules a library imports and the standalone exporter never touches, or
    touches from one thread at a time: Python 3.11's LazyLoader does not guard the first use
    against a second thread.
    """
    missing = [name for name in names if name not in sys.modules]
    if missing:
        sys.meta_path.insert(0, _LazyFinder(missing))


#: What the packages' `__init__`s re-export that is imported from the package itself, and from
#: which submodule: uvicorn's own `uvicorn.lifespan.on` does `from uvicorn import Config`,
#: collectors/process.py `from prometheus_client import CollectorRegistry`.
UVICORN_EXPORTS = {"Config": "uvicorn.config", "Server": "uvicorn.server"}
PROMETHEUS_CLIENT_EXPORTS = {
    "CollectorRegistry": "prometheus_client.registry",
    "REGISTRY": "prometheus_client.registry",
    "Metric": "prometheus_client.metrics_core",
}
#: redis-py's `__init__` imports its clients, sync and asyncio, cluster, sentinel and keyspace
#: notifications, with every command method: 4 MiB of RSS (measured, benchmarks/memory.py) for
#: a collector that talks over one of its Connections (collectors/redis/connection.py). Every
#: name the `__init__` re-exports, from where; `from redis import _himport_exec`
#: (redis/client.py) and `redis.asyncio` are submodules. Any other name (`redis.VERSION`) runs
#: the real `__init__`.
REDIS_EXPORTS = {
    name: module
    for module, names in {
        "redis.backoff": "default_backoff",
        "redis.client": "Redis StrictRedis",
        "redis.driver_info": "DriverInfo",
        "redis.cluster": "RedisCluster",
        "redis.connection": (
            "BlockingConnectionPool Connection ConnectionPool SSLConnection "
            "UnixDomainSocketConnection"
        ),
        "redis.credentials": "CredentialProvider UsernamePasswordCredentialProvider",
        "redis.keyspace_notifications": (
            "ChannelType ClusterKeyspaceNotifications EventType KeyeventChannel "
            "KeyNotification KeyspaceChannel KeyspaceNotifications "
            "KeyspaceNotificationsInterface KeyspaceWorkerThread SubkeyeventChannel "
            "SubkeyspaceChannel SubkeyspaceeventChannel SubkeyspaceitemChannel "
            "get_channel_type"
        ),
        "redis.exceptions": (
            "AuthenticationError AuthenticationWrongNumberOfArgsError BusyLoadingError "
            "ChildDeadlockedError ConnectionError CrossSlotTransactionError DataError "
            "InvalidPipelineStack InvalidResponse MaxConnectionsError OutOfMemoryError "
            "PubSubError ReadOnlyError RedisClusterException RedisError ResponseError "
            "TimeoutError WatchError"
        ),
        "redis.sentinel": (
            "Sentinel SentinelConnectionPool SentinelManagedConnection SentinelManagedSSLConnection"
        ),
        "redis.typing": "Subscription",
        "redis.utils": "from_url",
    }.items()
    for name in names.split()
}
REDIS_SUBMODULES = {"asyncio": "redis.asyncio", "_himport_exec": "redis._himport_exec"}
#: httpx's `__init__` imports the whole client (the transports, WSGI and ASGI included, auth,
#: multipart, decoders). The model server collector talks through httpcore and parses its URLs
#: with `httpx.URL`: 0.6 MiB (measured). Any other name runs the real `__init__`.
HTTPX_EXPORTS = {"URL": "httpx._urls"}


def defer_package_init(
    package: str,
    exports: Mapping[str, str],
    submodules: Mapping[str, str] | None = None,
    preload: Collection[str] = (),
) -> None:
    """Let `package`'s submodules be imported without running its `__init__` first.

    `exports` names what the `__init__` re-exports from which submodule (`Config` from
    `uvicorn.config`): those are looked up there. `submodules` names what the `__init__` binds
    to a submodule (`from . import asyncio`, `from . import array as arraylib`): those are
    imported. Any other name of the package itself (`uvicorn.run`) runs the real `__init__`
    first, so nothing breaks, it only costs the memory again. Nothing happens when the
    package is already imported or not installed. Names of `preload` are looked up as soon
    as the package is imported, so their imports happen where the package's `import`
    statement is (at start), not in the first scrape. The package is found when it is first
    imported (a finder on `sys.meta_path`), so the import system binds it in its parent
    package as usual and deferring a subpackage imports nothing before it is needed.

    Measured with benchmarks/memory.py: uvicorn's `__init__` imports `uvicorn.main`, its
    command line (click, the reload and multiprocess supervisors, multiprocessing: 1.4 MiB
    of RSS); prometheus_client's imports every exposition server (wsgiref, http.server,
    urllib.request, the ASGI and WSGI apps, pushgateway) and the client metric classes:
    2.6 MiB. The standalone exporter runs none of them: it builds uvicorn's Config and Server
    and uses prometheus_client's families, registry and OpenMetrics encoder.
    """
    if package not in sys.modules:
        deferral = _Deferral(package, exports, submodules or {}, preload)
        sys.meta_path.insert(0, _DeferringFinder(deferral))


@dataclass(frozen=True)
class _Deferral:
    """One package whose `__init__` waits: what `defer_package_init` was told about it."""

    package: str
    exports: Mapping[str, str]
    submodules: Mapping[str, str]
    preload: Collection[str]


class _DeferringFinder:
    """Finds one package as the other finders do, with a loader that defers its `__init__`."""

    def __init__(self, deferral: _Deferral) -> None:
        self.package = deferral.package
        self.deferral = deferral

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.package:
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)  # once: a reload finds the package as usual
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec: importlib.machinery.ModuleSpec | None = (
                find(fullname, path, target) if find is not None else None
            )
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or spec.submodule_search_locations is None:
            return spec  # not a package: nothing to defer
        deferring = _DeferringLoader(spec.loader, self.deferral)
        spec.loader = cast("importlib.abc.Loader", deferring)
        return spec


class _DeferringLoader:
    """Makes the package's module with a module `__getattr__` instead of running its
    `__init__`; that `__getattr__` finds the exports and submodules, or runs the `__init__`
    (once, other threads waiting for it) for any other name."""

    def __init__(self, loader: importlib.abc.Loader, deferral: _Deferral) -> None:
        self.loader = loader
        self.deferral = deferral

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        loader, exports, submodules = self.loader, self.deferral.exports, self.deferral.submodules
        lock = threading.RLock()
        running = False

        def __getattr__(name: str) -> object:
            nonlocal running
            if name in exports or name in submodules:
                with contextlib.suppress(ImportError, AttributeError):
                    if name in submodules:
                        value: object = importlib.import_module(submodules[name])
                    else:
                        value = getattr(importlib.import_module(exports[name]), name)
                    module.__dict__[name] = value  # found directly from now on
                    return value
            with lock:
                if module.__dict__.get("__getattr__") is __getattr__:
                    if running:  # the `__init__` itself, before it bound `name`
                        raise AttributeError(
                            f"partially initialized module {module.__name__!r} "
                            f"has no attribute {name!r}"
                        )
                    running = True
                    try:
                        loader.exec_module(module)
                    finally:
                        running = False
                        if module.__dict__.get("__getattr__") is __getattr__:
                            del module.__dict__["__getattr__"]  # the `__init__` has no own
            return getattr(module, name)

        module.__dict__["__getattr__"] = __getattr__
        for name in self.deferral.preload:
            __getattr__(name)

    def __getattr__(self, name: str) -> object:
        """The real loader's other methods (`get_data`, `get_resource_reader`)."""
        return getattr(self.loader, name)


def defer_package_inits() -> None:
    """The deferrals above and LAZY, as the standalone start makes them: before anything
    imports one of these packages (exporter.state, exporter.server, the collectors)."""
    defer_package_init("prometheus_client", PROMETHEUS_CLIENT_EXPORTS)
    defer_package_init("uvicorn", UVICORN_EXPORTS)
    defer_package_init("redis", REDIS_EXPORTS, REDIS_SUBMODULES)
    defer_package_init("httpx", HTTPX_EXPORTS, preload=HTTPX_EXPORTS)
    load_lazily()
