"""Helpers for tests that talk to real servers: reachability, free ports, serving an app.

A service that is not reachable fails the test under CI (`CI=true`) and skips it elsewhere,
with the reason said.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

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


@contextlib.contextmanager
def running_exporter(
    config_file: Path | None = None, *extra_args: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `python -m exporter` as a real process on a free port; yield (base URL, process)."""
    port = free_port()
    args = [sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}"]
    if config_file is not None:
        args += ["--config", str(config_file)]
    args += list(extra_args)
    log = (Path(os.environ.get("TMPDIR", "/tmp")) / f"exporter-{port}.log").open("w+")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: proc.poll() is None and httpx.get(f"{url}/-/healthy").status_code == 200,
            timeout=20,
            what="the exporter to answer /-/healthy",
        )
        yield url, proc
    finally:
        stop_process(proc, timeout=10)
        log.close()


@contextlib.contextmanager
def exporter_process(config_file: Path | None = None, *extra_args: str) -> Iterator[str]:
    """Run `python -m exporter` as a real process on a free port; yield its base URL."""
    with running_exporter(config_file, *extra_args) as (url, _):
        yield url


@contextlib.contextmanager
def server_process(args: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A server binary (Prometheus, Alertmanager, VictoriaMetrics...) as a real process, ready
    when `ready_url` answers 200; stopped by its PID (SIGTERM, then SIGKILL)."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: process.poll() is None and httpx.get(ready_url).status_code == 200,
            timeout=30,
            what=f"{Path(args[0]).name} to be ready ({log})",
        )
        yield process
    finally:
        stop_process(process, timeout=15)


def stop_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
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
