"""Scrapes with a short deadline never spoil a longer one (QA's repro, issue 11 follow-up).

A real exporter process reads real loopback sources (the machine's PostgreSQL and Redis, a
slow HTTP model server) while three clients flood `/metrics` with a 1 ms scrape timeout and
a normal scraper asks with 10 s: every normal scrape must report every target up.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.loopback_sources import slow_http_server
from tests.support import require_service, running_exporter

FLOODERS = 3
NORMAL_SCRAPES = 20
TINY = {"X-Prometheus-Scrape-Timeout-Seconds": "0.001"}
NORMAL = {"X-Prometheus-Scrape-Timeout-Seconds": "10"}


def _config(path: Path, model_port: int, scrape: str) -> Path:
    path.write_text(
        f"scrape: {{{scrape}}}\n"
        "collectors:\n  process: {enabled: false}\n"
        "databases:\n"
        "  - name: pg\n    url: postgresql+psycopg://postgres@127.0.0.1:5432/test\n"
        "redis:\n  - name: cache\n    url: redis://127.0.0.1:6379/0\n"
        "model_servers:\n"
        f"  - name: slow\n    kind: generic\n    url: http://127.0.0.1:{model_port}/health\n"
    )
    return path


def _samples(text: str, name: str) -> dict[str, float]:
    return {
        sample.labels["target"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


@contextlib.contextmanager
def _flooded(url: str) -> Iterator[collections.Counter[str]]:
    """Yields while FLOODERS threads scrape with the tiny timeout; counts their statuses."""
    statuses: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def flood() -> None:
        with httpx.Client(timeout=10, headers=TINY) as client:
            while not stop.is_set():
                try:
                    answer = client.get(f"{url}/metrics")
                except httpx.HTTPError as exc:
                    outcomes = [type(exc).__name__]
                else:
                    success = _samples(answer.text, "afirgen_exporter_collector_success")
                    outcomes = [str(answer.status_code)]
                    if success and all(value == 1 for value in success.values()):
                        outcomes.append("all up")
                with lock:
                    statuses.update(outcomes)

    threads = [threading.Thread(target=flood) for _ in range(FLOODERS)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def _normal_scrapes(url: str, statuses: collections.Counter[str]) -> tuple[list[str], str]:
    """NORMAL_SCRAPES scrapes with 10 s while the flood runs; (targets down each time, last)."""
    down: list[str] = []
    text = ""
    with httpx.Client(timeout=15, headers=NORMAL) as client:
        while statuses["200"] < FLOODERS:  # the flood is on before the first one
            threading.Event().wait(0.01)
        for _ in range(NORMAL_SCRAPES):
            answer = client.get(f"{url}/metrics")
            assert answer.status_code == 200
            text = answer.text
            success = _samples(text, "afirgen_exporter_collector_success")
            assert set(success) == {"system", "pg", "cache", "slow"}
            down.extend(target for target, value in success.items() if value != 1)
    return down, text


@pytest.fixture
def sources() -> None:
    require_service("PostgreSQL", 5432)
    require_service("Redis", 6379)


def _abandoned(text: str) -> dict[str, float]:
    return _samples(text, "afirgen_exporter_collections_abandoned_total")


def _flood_and_scrape(
    tmp_path: Path, scrape: str
) -> tuple[collections.Counter[str], list[str], str]:
    """The QA repro against a real exporter with `scrape:` settings: (flood statuses, targets
    seen down by the normal scrapes, the last normal answer)."""
    with slow_http_server(0.05) as model_port:
        config = _config(tmp_path / "exporter.yml", model_port, scrape)
        with running_exporter(config) as (url, _), _flooded(url) as statuses:
            down, text = _normal_scrapes(url, statuses)
    print("tiny scrapes:", dict(statuses))
    assert statuses["200"] > NORMAL_SCRAPES  # the flood did overlap the normal scrapes
    assert set(statuses) <= {"200", "all up"}
    return statuses, down, text


@pytest.mark.usefixtures("sources")
def test_tiny_deadline_flood_never_makes_a_normal_scrape_see_a_target_down(tmp_path):
    # without the minimum: the engine alone must keep the normal scrapes whole
    _, down, text = _flood_and_scrape(tmp_path, "min_timeout_seconds: 0")
    assert down == []
    # the tiny runs end at their deadline (their I/O timeouts come from it): waited for and
    # asked again, never abandoned (which would drop each source's connection)
    assert _abandoned(text) == {"system": 0, "pg": 0, "cache": 0, "slow": 0}


@pytest.mark.usefixtures("sources")
def test_the_minimum_timeout_gives_a_tiny_deadline_scrape_a_real_answer(tmp_path):
    statuses, down, text = _flood_and_scrape(tmp_path, "")
    assert down == []
    # raised to 0.5 s (0.25 s after the offset), a 1 ms scrape reads every source in time
    assert statuses["all up"] == statuses["200"]
    assert _abandoned(text) == {"system": 0, "pg": 0, "cache": 0, "slow": 0}
