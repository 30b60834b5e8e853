"""What the tests share, one helper per job; use these instead of writing a local copy.

- Services: `require_service`, `require_binary` and `unavailable` (a service that is not
  reachable fails the test under CI (`CI=true`) and skips it elsewhere, with the reason
  said), `reachable`, `free_port`, `wait_until` (poll with a deadline, never a fixed sleep).
- Scraping: `scrape_headers(seconds)` (the `X-Prometheus-Scrape-Timeout-Seconds` header,
  and the text-format `Accept` with `text=True`); `scrape_url(url)` (GET a metrics page and
  parse it); `parse_samples(text)` and `family_samples(families)` give `Samples`, every
  sample keyed by name and label set, read with `.value(name, **labels)`;
  `samples_of(families, family)` lists one family's samples.
- Collectors: `registry_of(families)` wraps families in a fresh `CollectorRegistry` for
  `get_sample_value`; `Collection(collector, seconds)` runs one whole collection and reads it
  back (`.value`, `.labels`, `.success`, `.reason`); `exposed_samples(families)` renders
  families in the text format and parses them back; `run_exposed(collector)` runs a collector
  once and gives (result, exposed samples).
- Processes: `serve_app` (an ASGI app on uvicorn in a thread), `started_process` (any binary
  as a real process, ready when a check passes, stopped by its PID), `server_process` (ready
  when a URL answers 200), `running_exporter` / `exporter_process` (`python -m exporter`),
  `stop_process` (SIGTERM or a signal of the caller's, then SIGKILL).
- Prometheus: `instant_query`, `silent_alertmanager_config`.

Private servers live in modules of their own: `tests/redis_server.py`, `tests/db_servers.py`,
`tests/prometheus_server.py`, `tests/loopback_sources.py` (slow, silent and dripping sockets,
and `LoopbackServer`, the thread-per-connection socket server to build another on),
`tests/slowloris.py`, `tests/tls_certs.py`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from collectors.base import CollectionResult, Deadline, SourceCollector

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, port: int, host: str = "127.0.0.1") -> None:
    if not reachable(host, port):
        unavailable(f"{name} is not reachable at {host}:{port}")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (apt-get install it, see .ci/run)")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last_error!r}")


@contextlib.contextmanager
def serve_app(app, *, host: str = "127.0.0.1", **uvicorn_options) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on a free loopback port; yield its base URL."""
    port = free_port()
    uvicorn_options.setdefault("lifespan", "off")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        **uvicorn_options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    scheme = "https" if uvicorn_options.get("ssl_certfile") else "http"
    wait_until(lambda: server.started, timeout=10, what="uvicorn to start")
    try:
        yield f"{scheme}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- scraping and reading samples -------------------------------------------------------------

#: What Prometheus sends: the scrape timeout the exporter's deadline is derived from.
TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
#: The text format 0.0.4, as `promtool check metrics` and the tests' parser read it.
TEXT_FORMAT = "text/plain;version=0.0.4"


def scrape_headers(seconds: float | str, *, text: bool = False) -> dict[str, str]:
    """The headers of a Prometheus scrape with a `seconds` timeout (and the text format)."""
    headers = {TIMEOUT_HEADER: str(seconds)}
    if text:
        headers = {"Accept": TEXT_FORMAT, **headers}
    return headers


class Samples(dict[tuple[str, frozenset[tuple[str, str]]], float]):
    """Every sample of one exposition, keyed by (sample name, frozenset of its labels)."""

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None."""
        return self.get((name, frozenset(labels.items())))


def family_samples(families: Iterable[Metric]) -> Samples:
    """The samples of families already built (a collection's, a parse's)."""
    return Samples(
        ((s.name, frozenset(s.labels.items())), s.value) for f in families for s in f.samples
    )


def parse_samples(text: str) -> Samples:
    """The samples of a text-format exposition, as prometheus_client parses it."""
    return family_samples(text_string_to_metric_families(text))


def samples_of(families: Iterable[Metric], family: str) -> list[Sample]:
    """The samples of the family called `family` (its `_bucket`, `_sum`... included)."""
    return [s for f in families if f.name == family for s in f.samples]


def scrape_url(url: str, *, timeout_seconds: float | None = None) -> Samples:
    """GET a metrics page (`/metrics`, `/probe?...`) in the text format; it must answer 200.

    With `timeout_seconds`, the request carries Prometheus's scrape-timeout header.
    """
    sent = (
        {"Accept": TEXT_FORMAT}
        if timeout_seconds is None
        else scrape_headers(timeout_seconds, text=True)
    )
    response = httpx.get(url, headers=sent, timeout=30)
    assert response.status_code == 200, response.text
    return parse_samples(response.text)


class _Fixed:
    """A collector that hands back families already built."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def registry_of(families: Iterable[Metric]) -> CollectorRegistry:
    """A fresh registry serving `families`, to read them with `get_sample_value`."""
    registry = CollectorRegistry()
    registry.register(_Fixed(families))
    return registry


def exposed_samples(families: Iterable[Metric]) -> Samples:
    """The samples of `families` as the text exposition serves them (rendered, parsed back)."""
    return parse_samples(generate_latest(registry_of(families)).decode())


def run_exposed(
    collector: SourceCollector, seconds: float = 5.0
) -> tuple[CollectionResult, Samples]:
    """One run of `collector` with a `seconds` deadline: its result, and its exposed samples."""
    result = collector.run(Deadline.after(seconds))
    return result, exposed_samples(result.families)


class Collection:
    """One whole collection of a collector (`run` with a deadline), readable sample by sample."""

    def __init__(self, collector: SourceCollector, seconds: float = 10.0) -> None:
        self.result = collector.run(Deadline.after(seconds))
        self.success: bool = self.result.success
        self.reason: str = self.result.reason
        self.series_dropped: int = self.result.series_dropped
        self.families: list[Metric] = list(self.result.families)
        self.registry = registry_of(self.families)

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def labels(self, name: str, label: str) -> set[str]:
        """The values `label` takes on the samples called `name`."""
        return {
            sample.labels[label]
            for family in self.families
            for sample in family.samples
            if sample.name == name
        }


# -- processes and servers -----------------------------------------------------------------


@contextlib.contextmanager
def started_process(
    args: list[str],
    *,
    ready: Callable[[], object],
    what: str,
    log: Path | None = None,
    timeout: float = 30,
    stop_timeout: float = 15,
    stop_signal: int = signal.SIGTERM,
    **popen: Any,
) -> Iterator[subprocess.Popen[bytes]]:
    """`args` as a real process (output to `log`, or nowhere), yielded once it runs and
    `ready()` is true; stopped by its PID on the way out (`stop_process`). `popen` goes to
    `subprocess.Popen` (cwd, env, user...)."""
    out = log.open("wb") if log is not None else None
    try:
        process = subprocess.Popen(
            args, stdout=out or subprocess.DEVNULL, stderr=subprocess.STDOUT, **popen
        )
    finally:
        if out is not None:
            out.close()  # the child holds its own descriptor
    try:
        wait_until(lambda: process.poll() is None and ready(), timeout=timeout, what=what)
        yield process
    finally:
        stop_process(process, timeout=stop_timeout, stop_signal=stop_signal)


def exporter_args(port: int, config_file: Path | None = None, *extra_args: str) -> list[str]:
    """The command line of `python -m exporter` on 127.0.0.1:`port`."""
    args = [sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}"]
    if config_file is not None:
        args += ["--config", str(config_file)]
    return args + list(extra_args)


@contextlib.contextmanager
def running_exporter(
    config_file: Path | None = None, *extra_args: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `python -m exporter` as a real process on a free port; yield (base URL, process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with started_process(
        exporter_args(port, config_file, *extra_args),
        ready=lambda: httpx.get(f"{url}/-/healthy").status_code == 200,
        what="the exporter to answer /-/healthy",
        log=Path(os.environ.get("TMPDIR", "/tmp")) / f"exporter-{port}.log",
        timeout=20,
        stop_timeout=10,
        cwd=ROOT,
    ) as proc:
        yield url, proc


@contextlib.contextmanager
def exporter_process(config_file: Path | None = None, *extra_args: str) -> Iterator[str]:
    """Run `python -m exporter` as a real process on a free port; yield its base URL."""
    with running_exporter(config_file, *extra_args) as (url, _):
        yield url


@contextlib.contextmanager
def server_process(args: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A server binary (Prometheus, Alertmanager, VictoriaMetrics...) as a real process, ready
    when `ready_url` answers 200; stopped by its PID (SIGTERM, then SIGKILL)."""
    with started_process(
        args,
        ready=lambda: httpx.get(ready_url).status_code == 200,
        what=f"{Path(args[0]).name} to be ready ({log})",
        log=log,
    ) as process:
        yield process


def stop_process(
    process: subprocess.Popen[Any], timeout: float, stop_signal: int = signal.SIGTERM
) -> None:
    """SIGTERM (or `stop_signal`), and SIGKILL if it has not exited within `timeout` seconds."""
    process.send_signal(stop_signal)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def instant_query(base_url: str, expr: str) -> list[dict[str, Any]]:
    """The result of a PromQL instant query on Prometheus's HTTP API (or VictoriaMetrics')."""
    response = httpx.get(f"{base_url}/api/v1/query", params={"query": expr}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def silent_alertmanager_config() -> dict[str, Any]:
    """The example Alertmanager config (deploy/alertmanager/), its receivers notifying nobody."""
    import yaml

    config: dict[str, Any] = yaml.safe_load(
        (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text()
    )
    config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]
    return config
