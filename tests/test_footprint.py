"""exporter/footprint.py and the lazy catalog: what a standalone exporter imports.

The modules a process imported are read from a real start (`python -X importtime`, which
logs every module an `import` statement loads or tries to, not those of `importlib.import_module`: the
catalog's own imports of collector modules are seen through the modules those import),
scraped once against a private Redis.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.model_server_apps import Behaviour, serve_stand_in
from tests.redis_server import private_redis
from tests.support import ROOT, exporter_args, free_port, running_exporter, started_process

#: Imported by the standalone Redis-only exporter before this change, and never used by it.
NOT_FOR_REDIS_ONLY = (
    "opentelemetry",  # redis-py imports the OTel metrics SDK to see whether it is there
    "psutil",  # through the OTel SDK's resources, and the system collector (off here)
    "collectors.model_servers",  # the catalog's summary of model server kinds
    "collectors.model_servers.presets",
    "click",  # uvicorn's __init__ -> uvicorn.main
    "uvicorn.main",
    "multiprocessing",  # uvicorn's supervisors
    "bcrypt",  # no basic auth users configured
    "prometheus_client.exposition",  # prometheus_client's __init__: its servers, pushgateway
    "prometheus_client.metrics",  # ... and the client metric classes
    "wsgiref",
    "redis.client",  # redis-py's __init__: its clients (the collector talks over a Connection)
    "redis.commands.core",
    "redis.asyncio",
    "redis.cluster",
    "redis.sentinel",
)
#: Imported by a standalone exporter with a model server before this change, and never used.
NOT_FOR_MODEL_SERVERS = ("httpx._client", "httpx._transports", "httpx._multipart")


def imported_modules(log: str) -> set[str]:
    """Module names from `-X importtime` lines (`import time: self | cumulative | name`)."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in log.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


@contextlib.contextmanager
def importtime_exporter(config: Path) -> Iterator[tuple[str, Path]]:
    """The standalone exporter on `config`, started with `-X importtime`: its URL once it
    answers, and the log its import lines go to (beside the config)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = config.with_suffix(".log")
    args = exporter_args(port, config)
    with started_process(
        [args[0], "-X", "importtime", *args[1:]],
        ready=lambda: httpx.get(f"{url}/-/healthy").status_code == 200,
        what="the exporter to answer /-/healthy",
        log=log,
        cwd=ROOT,
    ):
        yield url, log


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_redis_only_exporter_imports_neither_unused_collectors_nor_uvicorn_cli(tmp_path: Path):
    with private_redis(tmp_path) as server:
        config = tmp_path / "redis.yml"
        config.write_text(
            "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
            f"redis:\n  - name: cache\n    url: {server.url}\n"
        )
        with importtime_exporter(config) as (url, log):
            body = httpx.get(f"{url}/metrics", headers={"Accept": "text/plain"}).text
    assert 'cache_up{cache="cache"} 1.0' in body
    modules = imported_modules(log.read_text())
    # the test means something: the Redis client, its collector and the server were imported
    assert {"redis.connection", "collectors.redis.collector", "uvicorn.server"} <= modules
    assert sorted(modules & set(NOT_FOR_REDIS_ONLY)) == []


def test_exporter_with_redis_and_a_model_server_scrapes_both_without_their_clients_extras(
    tmp_path: Path,
):
    with private_redis(tmp_path) as server, contextlib.ExitStack() as stack:
        model_url, _ = serve_stand_in(stack, "vllm", Behaviour())
        config = tmp_path / "both.yml"
        config.write_text(
            "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
            f"redis:\n  - name: cache\n    url: {server.url}\n"
            "model_servers:\n  - name: llm\n    kind: vllm\n"
            f"    url: {model_url}\n    models: [fir-summarizer]\n"
        )
        with importtime_exporter(config) as (url, log):
            bodies = [
                httpx.get(f"{url}/metrics", headers={"Accept": "text/plain"}).text for _ in range(2)
            ]
    for body in bodies:
        assert 'cache_up{cache="cache"} 1.0' in body
        assert 'model_server_up{server="llm"} 1.0' in body
        assert 'redis_connected_clients{cache="cache"}' in body
    modules = imported_modules(log.read_text())
    assert {"redis.connection", "httpcore", "httpx._urlparse"} <= modules
    used_here = {"collectors.model_servers", "collectors.model_servers.presets"}
    assert sorted(modules & {*NOT_FOR_REDIS_ONLY, *NOT_FOR_MODEL_SERVERS} - used_here) == []


def test_task_queue_exporter_reads_its_redis_broker_through_the_deferred_redis_package(
    tmp_path: Path,
):
    """The task queue collectors use `redis.Redis`: found through REDIS_EXPORTS."""
    with private_redis(tmp_path) as server:
        server.client(db=1).rpush("rq:queue:default", "job-1", "job-2")
        broker = server.url.removesuffix("/0") + "/1"
        config = tmp_path / "queue.yml"
        config.write_text(
            "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
            f"task_queues:\n  - name: jobs\n    kind: rq\n    url: {broker}\n"
            "    queues: [default]\n"
        )
        with running_exporter(config) as (url, _):
            body = httpx.get(f"{url}/metrics", headers={"Accept": "text/plain"}).text
    assert 'background_tasks_queued{backend="jobs",priority="none",queue="default"} 2.0' in body


def test_deferred_init_runs_once_for_threads_that_ask_together_and_binds_in_its_parent(
    tmp_path: Path,
):
    """`outer.inner`'s `__init__` is slow and counts its runs; eight threads read a name that
    only it defines, at once."""
    inner = tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    (tmp_path / "outer" / "__init__.py").write_text("")
    (inner / "part.py").write_text("VALUE = 'part'\n")
    (inner / "__init__.py").write_text(
        "import time\nimport builtins\n"
        "builtins.runs = getattr(builtins, 'runs', 0) + 1\n"
        "time.sleep(0.2)\nfrom outer.inner.part import VALUE\nLATE = 'late'\n"
    )
    done = run_python(
        f"""
        import builtins, sys, threading
        sys.path.insert(0, {str(tmp_path)!r})
        from exporter import footprint
        footprint.defer_package_init("outer.inner", {{"VALUE": "outer.inner.part"}})
        import outer.inner.part
        import outer
        print(outer.inner is sys.modules["outer.inner"], outer.inner.VALUE)
        print(getattr(builtins, "runs", 0))
        seen = []
        threads = [threading.Thread(target=lambda: seen.append(outer.inner.LATE)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(seen.count("late"), builtins.runs)
        """
    )
    assert done.stdout.splitlines() == ["True part", "0", "8 1"], done.stderr


def test_deferred_redis_serves_the_same_objects_as_its_init():
    """Every name of REDIS_EXPORTS is the object the real `__init__` binds, and a name it does
    not list (`VERSION`) runs that `__init__`."""
    done = run_python(
        """
        import sys
        from exporter import footprint
        footprint.defer_package_init("redis", footprint.REDIS_EXPORTS, footprint.REDIS_SUBMODULES)
        import redis
        from redis.connection import ConnectionPool  # the submodule, without the __init__
        print(ConnectionPool.__name__, "redis.client" in sys.modules, "redis.sentinel" in sys.modules)
        deferred = {name: getattr(redis, name) for name in footprint.REDIS_EXPORTS}
        print(redis.VERSION >= (5,), "redis.sentinel" in sys.modules)
        real = {name: getattr(redis, name) for name in footprint.REDIS_EXPORTS}
        print([name for name in real if real[name] is not deferred[name]])
        print(redis.asyncio is sys.modules["redis.asyncio"], redis.ConnectionPool is ConnectionPool)
        """
    )
    expected = ["ConnectionPool False False", "True True", "[]", "True True"]
    assert done.stdout.splitlines() == expected, done.stderr


def test_deferred_httpx_parses_urls_and_inits_for_its_client():
    """`httpx.URL` is found when httpx is imported (at start, not in the first scrape)."""
    done = run_python(
        """
        import sys
        from exporter import footprint
        footprint.defer_package_inits()
        import httpx
        print("httpx._urls" in sys.modules, "httpx._client" in sys.modules)
        print(httpx.URL("http://127.0.0.1:8000/v1/models").raw_path.decode())
        print(httpx.Client.__name__, httpx.URL is sys.modules["httpx._urls"].URL)
        """
    )
    assert done.stdout.split() == ["True", "False", "/v1/models", "Client", "True"], done.stderr


def test_exporter_without_collectors_imports_neither_importlib_metadata_nor_logging_config(
    tmp_path: Path,
):
    """Its version is the installed distribution's, read without importlib.metadata; uvicorn's
    `import logging.config` does not run that module."""
    config = tmp_path / "empty.yml"
    config.write_text("collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n")
    with importtime_exporter(config) as (url, log):
        body = httpx.get(f"{url}/metrics", headers={"Accept": "text/plain"}).text
    version = importlib.metadata.version("afirgen-exporter")
    assert f'version="{version}"' in body.split("afirgen_exporter_build_info{", 1)[1]
    modules = imported_modules(log.read_text())
    assert {"uvicorn.config", "logging.config"} <= modules  # imported, its code not run
    assert sorted(modules & {"importlib.metadata", "zipfile", "logging.handlers"}) == []


def test_lazily_loaded_module_runs_its_code_on_first_use():
    done = run_python(
        """
        import sys
        from exporter import footprint
        footprint.load_lazily(["logging.config"])
        import logging.config
        print("logging.handlers" in sys.modules)
        logging.config.dictConfig({"version": 1, "incremental": True})
        print("logging.handlers" in sys.modules, logging.config.dictConfig.__module__)
        """
    )
    assert done.stdout.split() == ["False", "True", "logging.config"], done.stderr


def test_blocked_import_fails_inside_the_block_and_works_after_it():
    done = run_python(
        """
        import sys
        from exporter import footprint
        with footprint.unused_imports_absent():
            try:
                import opentelemetry.sdk.metrics
            except ImportError:
                print("blocked")
            print("opentelemetry" in sys.modules)
        import opentelemetry.sdk.metrics
        print(opentelemetry.sdk.metrics.MeterProvider.__name__)
        """
    )
    assert done.stdout.split() == ["blocked", "False", "MeterProvider"], done.stderr


def test_deferred_uvicorn_init_runs_when_a_name_of_the_package_is_used():
    done = run_python(
        """
        import sys
        from exporter import footprint
        footprint.defer_package_init("uvicorn", footprint.UVICORN_EXPORTS)
        import uvicorn.config
        import uvicorn.lifespan.on  # does `from uvicorn import Config`
        print("uvicorn.main" in sys.modules)
        import uvicorn
        print(uvicorn.Config is uvicorn.config.Config)
        print(callable(uvicorn.run), "uvicorn.main" in sys.modules, bool(uvicorn.__version__))
        """
    )
    assert done.stdout.split() == ["False", "True", "True", "True", "True"], done.stderr


def test_deferring_an_imported_package_changes_nothing():
    done = run_python(
        """
        import sys, uvicorn
        from exporter import footprint
        footprint.defer_package_init("uvicorn", footprint.UVICORN_EXPORTS)
        print(sys.modules["uvicorn"] is uvicorn, "uvicorn.main" in sys.modules)
        """
    )
    assert done.stdout.split() == ["True", "True"], done.stderr


def test_deferred_prometheus_client_serves_its_exports_and_inits_for_other_names():
    done = run_python(
        """
        import sys
        from exporter import footprint
        footprint.defer_package_init("prometheus_client", footprint.PROMETHEUS_CLIENT_EXPORTS)
        from collectors.process import build  # `from prometheus_client import CollectorRegistry`
        build()
        print("prometheus_client.exposition" in sys.modules)
        from prometheus_client import CollectorRegistry, Counter
        from prometheus_client.registry import CollectorRegistry as Registry
        print(CollectorRegistry is Registry, "prometheus_client.exposition" in sys.modules)
        """
    )
    assert done.stdout.split() == ["False", "True", "True"], done.stderr
