"""Embedded mode under a real `uvicorn --workers 2` (examples/embedded_app.py): whichever worker
answers a scrape, it serves the sum of both (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import concurrent.futures
import os
import sys

import httpx
import pytest

from tests.support import ROOT, free_port, scrape_url, started_process


def answering_pid(url: str) -> int:
    """The PID of the worker that answered; a new connection per request, so the kernel may
    hand it to either worker."""
    response = httpx.get(f"{url}/api/health", headers={"Connection": "close"}, timeout=10)
    assert response.status_code == 200
    return int(response.json()["pid"])


@pytest.mark.slow
def test_two_uvicorn_workers_serve_the_sum_of_both(tmp_path, postgres_url, redis_host_port):
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "DATABASE_URL": postgres_url,
        "REDIS_URL": "redis://127.0.0.1:6379/14",
        "PYTHONPATH": str(ROOT),
    }
    args = [sys.executable, "-m", "uvicorn", "examples.embedded_app:app", "--workers", "2"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "uvicorn.log"
    try:
        with started_process(
            args,
            ready=lambda: answering_pid(url),
            what="both workers up",
            log=log,
            stop_timeout=20,
            cwd=ROOT,
            env=env,
        ):
            _two_workers_sum(url)
    except AssertionError:
        print(log.read_text()[-3000:])  # pytest shows it beside the failure
        raise


def _two_workers_sum(url: str) -> None:
    sent = 1  # the request that saw the server up
    pids: set[int] = set()
    with concurrent.futures.ThreadPoolExecutor(8) as clients:
        while len(pids) < 2 and sent < 2000:
            pids.update(clients.map(lambda _: answering_pid(url), range(40)))
            sent += 40
    assert len(pids) == 2, "every request went to one worker"
    labels = {"endpoint": "/api/health", "method": "GET", "status": "200"}
    metrics = f"{url}/prometheus/metrics"
    # Whichever worker answers the scrape, it serves the sum of both.
    scrapes = [scrape_url(metrics) for _ in range(6)]
    assert {samples.value("api_requests_total", **labels) for samples in scrapes} == {sent}
    # The app's own engine (pool_size 5 + max_overflow 5) and Redis client are read as well.
    for samples in scrapes:
        assert samples.value("db_connection_pool_size", database="app") == 10
        assert samples.value("cache_up", cache="cache") == 1
    in_progress = scrape_url(metrics).value(
        "api_requests_in_progress", endpoint="/api/health", method="GET"
    )
    assert in_progress == 0
