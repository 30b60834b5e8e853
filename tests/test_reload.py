"""Reload under load: real SIGHUPs and `POST /-/reload`s to a real exporter process while
scrapes are in flight."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.loopback_sources import slow_http_server
from tests.support import running_exporter, wait_until

RELOADS = 10
CLIENTS = 4
HEADERS = {"X-Prometheus-Scrape-Timeout-Seconds": "5"}


def _config(path: Path, model_port: int) -> Path:
    path.write_text(
        "model_servers:\n"
        "  - name: slow\n"
        "    kind: generic\n"
        f"    url: http://127.0.0.1:{model_port}/health\n"
    )
    return path


def _log_of(url: str) -> Path:
    port = url.rsplit(":", 1)[1]
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"exporter-{port}.log"


@pytest.mark.parametrize("trigger", ["SIGHUP", "POST /-/reload"])
def test_reload_under_load_answers_every_scrape_with_200(tmp_path, trigger):
    statuses: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def load(url: str) -> None:
        with httpx.Client(timeout=10, headers=HEADERS) as client:
            while not stop.is_set():
                try:
                    answer = client.get(f"{url}/metrics")
                    outcome = str(answer.status_code)
                    if answer.status_code == 200 and b"model_server_up" not in answer.content:
                        outcome = "200 without model_server_up"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with lock:
                    statuses[outcome] += 1

    # every model-server answer takes 0.2 s, so each reload meets scrapes in flight
    with slow_http_server(0.2) as model_port:
        config = _config(tmp_path / "exporter.yml", model_port)
        with running_exporter(config, "--web.enable-lifecycle") as (url, proc):
            log = _log_of(url)
            threads = [threading.Thread(target=load, args=(url,)) for _ in range(CLIENTS)]
            for thread in threads:
                thread.start()
            try:
                wait_until(lambda: sum(statuses.values()) >= CLIENTS, what="the first scrapes")
                for done in range(1, RELOADS + 1):
                    if trigger == "SIGHUP":
                        proc.send_signal(signal.SIGHUP)
                    else:
                        assert httpx.post(f"{url}/-/reload", timeout=30).status_code == 200
                    wait_until(
                        lambda n=done: log.read_text().count("config reloaded") >= n,
                        what=f"reload {done}",
                    )
                    time.sleep(0.25)  # let the load meet the new engine before the next one
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=30)
            assert proc.poll() is None
            text = log.read_text()
    assert text.count("config reloaded") == RELOADS
    assert sum(statuses.values()) > RELOADS * CLIENTS
    assert dict(statuses) == {"200": sum(statuses.values())}, text[-3000:]
