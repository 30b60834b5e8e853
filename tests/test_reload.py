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
from tests.support import free_port, running_exporter, scrape_headers, wait_until

RELOADS = 6
CLIENTS = 4
HEADERS = scrape_headers(5)


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


def _reload_ok(url: str) -> float:
    body = httpx.get(f"{url}/metrics", headers=HEADERS, timeout=10).text
    line = next(li for li in body.splitlines() if li.startswith(RELOAD_OK))
    return float(line.split()[-1])


RELOAD_OK = "afirgen_exporter_config_last_reload_successful "


def test_a_refused_reload_without_a_config_file_sets_last_reload_successful_to_0():
    with running_exporter(None, "--web.enable-lifecycle") as (url, proc):
        assert _reload_ok(url) == 1
        answer = httpx.post(f"{url}/-/reload", timeout=10)
        assert answer.status_code == 400 and "no config file to reload" in answer.text
        assert _reload_ok(url) == 0
        assert proc.poll() is None


def _landing_row(url: str, target: str) -> str:
    page = httpx.get(f"{url}/", timeout=10).text
    return next(row for row in page.split("<tr>") if f"<td>{target}</td>" in row)


def test_a_reload_keeps_the_status_and_logged_state_of_unchanged_targets(tmp_path):
    gone = free_port()  # nothing listens: the database stays down (refused) throughout
    config = tmp_path / "exporter.yml"
    base = (
        "collectors:\n  process: {enabled: false}\n"
        "databases:\n"
        f"  - name: gone\n    url: postgresql+psycopg://postgres@127.0.0.1:{gone}/test\n"
    )
    with slow_http_server(0.0) as model_port:
        config.write_text(base + _model_servers(model_port, "fine", "moved"))
        with running_exporter(config, "--web.enable-lifecycle") as (url, _):
            log = _log_of(url)
            httpx.get(f"{url}/metrics", headers=HEADERS, timeout=10)
            before = {name: _landing_row(url, name) for name in ("system", "fine", "moved")}
            # "moved" changes its settings; everything else is as it was
            config.write_text(base + _model_servers(model_port, "fine", "moved", moved="/ready"))
            for _ in range(2):
                assert httpx.post(f"{url}/-/reload", timeout=30).status_code == 200
            after = {name: _landing_row(url, name) for name in ("system", "fine", "moved")}
            httpx.get(f"{url}/metrics", headers=HEADERS, timeout=10)
            text = log.read_text()
    for name in ("system", "fine"):
        assert "<td>ok</td>" in before[name] and "never" not in before[name]
        assert after[name] == before[name]  # same last success, duration and state
    assert "not scraped yet" in after["moved"] and "never" in after["moved"]
    # the database stayed down across both reloads: announced once
    assert len([line for line in text.splitlines() if "target=gone" in line]) == 1, text


def _model_servers(port: int, *names: str, moved: str = "/health") -> str:
    entries = "".join(
        f"  - name: {name}\n    kind: generic\n"
        f"    url: http://127.0.0.1:{port}{moved if name == 'moved' else '/health'}\n"
        for name in names
    )
    return "model_servers:\n" + entries
