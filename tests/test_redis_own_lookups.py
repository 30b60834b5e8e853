"""Issue 13, item 1: the exporter's own key lookups never show in the cache numbers it reports.

One exporter (the real app on a loopback port) scrapes a private redis-server as the cache
(db 0) and, on the same server, RQ (ten queues), Celery (three queues, four priority lists
each) and plain keys through the task-queue collector: about a hundred own lookups per scrape,
most of them misses on empty queues. Between scrapes the test makes a known workload on the
cache; `cache_operations_total` must count exactly it, `cache_hit_rate` must be its rate, an
idle interval must give no hit-rate sample, and a restart between scrapes no bogus rate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import create_app
from exporter.config import load_config
from exporter.state import Exporter
from tests.redis_server import RedisServer, private_redis
from tests.support import scrape_headers, serve_app

HEADERS = scrape_headers(10, text=True)
RQ_QUEUES = [f"q{i}" for i in range(10)]
CELERY_QUEUES = ["c0", "c1", "c2"]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with private_redis(tmp_path) as srv:
        yield srv


def exporter_config(server: RedisServer):
    base = f"redis://127.0.0.1:{server.port}"
    return load_config(
        {
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "redis": [{"name": "cache", "url": f"{base}/0"}],
            "task_queues": [
                {"name": "rq", "kind": "rq", "url": f"{base}/1", "queues": RQ_QUEUES},
                {"name": "celery", "kind": "celery", "url": f"{base}/2", "queues": CELERY_QUEUES},
                {
                    "name": "keys",
                    "kind": "redis",
                    "url": f"{base}/3",
                    "keys": [
                        {"key": "mail:high", "queue": "mail"},
                        {"key": "ocr", "type": "zset", "priorities": {"urgent": [0, 2]}},
                    ],
                },
            ],
        },
        env={},
    )


def fill_queues(server: RedisServer) -> None:
    """Some queue keys exist (hits for the exporter), most do not (misses)."""
    from celery import Celery
    from rq import Queue

    rq_redis = redis.Redis(host="127.0.0.1", port=server.port, db=1)
    Queue("q0", connection=rq_redis).enqueue("tests.tq_rq_jobs.ok", 1)
    rq_redis.close()
    app = Celery("afx_own_lookups", broker=f"redis://127.0.0.1:{server.port}/2")
    app.send_task("afx.ok", args=[1], queue="c0")
    app.close()
    redis.Redis(host="127.0.0.1", port=server.port, db=3).zadd("ocr", {"job": 9})


def workload(cache: redis.Redis, hits: int, misses: int) -> None:
    """`hits` GETs of keys that exist and `misses` of keys that do not: the app's lookups."""
    for i in range(hits):
        assert cache.get(f"key:{i % 10}") == b"v"
    for i in range(misses):
        assert cache.get(f"absent:{i}") is None


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", headers=HEADERS, timeout=30)
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset({"cache": "cache", **labels}.items())))


def lookups(samples: Samples, result: str) -> float:
    value = get(samples, "cache_operations_total", type="lookup", result=result)
    assert value is not None
    return value


def raw(samples: Samples, what: str) -> float:
    value = get(samples, f"redis_keyspace_{what}_total")
    assert value is not None
    return value


def own(samples: Samples, what: str) -> float:
    value = get(samples, f"redis_exporter_own_keyspace_{what}_total")
    assert value is not None
    return value


def queues_up(samples: Samples) -> bool:
    names = ("rq", "celery", "keys")
    kinds = {"rq": "rq", "celery": "celery-redis", "keys": "redis"}
    return all(
        samples.get(("background_tasks_up", frozenset({"backend": n, "kind": kinds[n]}.items())))
        == 1.0
        for n in names
    )


def cache_keys(server: RedisServer) -> redis.Redis:
    """The app's cache client, with the ten keys its workload finds."""
    cache = server.client()
    for i in range(10):
        cache.set(f"key:{i}", "v")
    return cache


def test_reported_lookups_are_exactly_the_apps_whatever_the_exporter_reads(server):
    cache = cache_keys(server)
    fill_queues(server)
    with serve_app(create_app(Exporter(exporter_config(server)))) as url:
        previous = first = scrape(url)
        assert get(previous, "cache_hit_rate") is None  # the first scrape: no interval
        assert queues_up(previous)
        for hits, misses in [(80, 20), (61, 39), (80, 20)]:
            workload(cache, hits, misses)
            current = scrape(url)
            assert queues_up(current)
            app = (
                lookups(current, "hit") - lookups(previous, "hit"),
                lookups(current, "miss") - lookups(previous, "miss"),
            )
            assert app == (hits, misses)  # exactly the test's lookups
            rate = get(current, "cache_hit_rate")
            assert rate == pytest.approx(100.0 * hits / (hits + misses), abs=1.0)
            # the raw counters are the server's: the app's and the exporter's own, exactly
            own_misses = own(current, "misses") - own(previous, "misses")
            own_hits = own(current, "hits") - own(previous, "hits")
            assert raw(current, "misses") - raw(previous, "misses") == misses + own_misses
            assert raw(current, "hits") - raw(previous, "hits") == hits + own_hits
            previous = current
        # the server counted the exporter's own reads too: ten empty RQ queues alone are more
        # than 81 misses a scrape. The engine starts the slowest collection first, so whether
        # a scrape's queue reads land before or after its INFO alternates: count them over
        # the three intervals (at least two scrapes' worth), not per interval
        assert own(current, "misses") - own(first, "misses") > 2 * 81
        assert own(current, "hits") - own(first, "hits") > 0


def test_an_idle_app_has_no_hit_rate_and_no_lookups(server):
    fill_queues(server)
    with serve_app(create_app(Exporter(exporter_config(server)))) as url:
        previous = first = scrape(url)
        for _ in range(3):
            current = scrape(url)  # nothing between scrapes but the exporter's own reads
            assert queues_up(current)
            assert get(current, "cache_hit_rate") is None  # never a low rate
            assert lookups(current, "hit") == lookups(previous, "hit")
            assert lookups(current, "miss") == lookups(previous, "miss")
            previous = current
        # the server counted them all (per interval they land before or after INFO, as the
        # engine orders the collections): at least two scrapes' worth over three intervals
        assert raw(current, "misses") - raw(first, "misses") > 2 * 81


def test_a_restart_between_scrapes_gives_no_rate_across_it(server):
    cache = cache_keys(server)
    fill_queues(server)
    with serve_app(create_app(Exporter(exporter_config(server)))) as url:
        scrape(url)
        workload(cache, 30, 70)
        before = scrape(url)
        assert get(before, "cache_hit_rate") == pytest.approx(30.0, abs=1.0)
        server.stop()
        server.start()  # same port, empty, counters from 0, a new run id
        cache = cache_keys(server)
        workload(cache, 8, 2)
        after = scrape(url)
        assert get(after, "cache_up") == 1.0
        assert get(after, "cache_hit_rate") is None  # not computed across the restart
        assert lookups(after, "hit") <= 8 and lookups(after, "miss") <= 2  # from 0 again
        workload(cache, 80, 20)
        following = scrape(url)
        assert get(following, "cache_hit_rate") == pytest.approx(80.0, abs=1.0)
        assert lookups(following, "hit") - lookups(after, "hit") == 80
        assert lookups(following, "miss") - lookups(after, "miss") == 20


# -- end to end: an embedded FastAPI app with real traffic, scraped by a real Prometheus --------


def every_half_second(config: dict[str, Any]) -> dict[str, Any]:
    """Scrapes twice a second: the four scraped intervals with traffic come 2 s sooner (the
    first scrape still waits for Prometheus's 5 s target-update batch)."""
    return {**config, "global": {"scrape_interval": "500ms", "scrape_timeout": "500ms"}}


def test_embedded_app_hit_rate_in_prometheus_is_the_traffics(server, tmp_path: Path):
    """The backend's spec query `cache_hit_rate` returns the traffic's true rate (80%) although
    the same Redis holds ten empty RQ queues the exporter reads at every scrape."""
    from fastapi import FastAPI

    from exporter import embed
    from tests.prometheus_server import prometheus_server, scrape_one
    from tests.support import wait_until

    app_redis = redis.Redis(host="127.0.0.1", port=server.port, db=0)
    for i in range(4):
        app_redis.set(f"item:{i}", "v")
    app = FastAPI()

    @app.get("/api/items")
    def items() -> dict[str, int]:
        # one command, four keys that exist and one that does not: every interval with any
        # traffic has exactly 80% hits, wherever the scrapes fall
        found = app_redis.mget([f"item:{i}" for i in range(4)] + ["item:absent"])
        return {"found": sum(v is not None for v in found)}

    base = f"redis://127.0.0.1:{server.port}"
    config = load_config(
        {
            "collectors": {"system": {"enabled": False}},
            "task_queues": [{"name": "rq", "kind": "rq", "url": f"{base}/1", "queues": RQ_QUEUES}],
        },
        env={},
    )
    embed(app, redis=app_redis, config=config)
    selector = '{job="embedded", cache="cache"}'
    with (
        serve_app(app) as url,
        prometheus_server(every_half_second(scrape_one(url)), tmp_path) as prometheus,
        httpx.Client(base_url=url) as client,
    ):

        def samples(expr: str) -> list[float]:
            return [float(r["value"][1]) for r in prometheus.query(expr)]

        wait_until(lambda: samples(f"cache_up{selector}") == [1.0], what="a first scrape")
        requests = 0

        def traffic_scraped() -> bool:
            nonlocal requests
            for _ in range(20):
                assert client.get("/api/items").json() == {"found": 4}
            requests += 20
            # several scrapes with traffic in their interval
            return samples(f"count_over_time(cache_hit_rate{selector}[1m])") >= [4.0]

        wait_until(traffic_scraped, timeout=40, what="scrapes of intervals with traffic")
        low = samples(f"min_over_time(cache_hit_rate{selector}[1m])")
        high = samples(f"max_over_time(cache_hit_rate{selector}[1m])")
        assert low and high and 79.0 <= low[0] <= high[0] <= 81.0
        # the exporter's own reads were there all along, and the server counted them
        own_misses = samples(f"increase(redis_exporter_own_keyspace_misses_total{selector}[1m])")
        assert own_misses and own_misses[0] > 81

        def lookups_counted() -> bool:
            hits = samples('cache_operations_total{job="embedded", type="lookup", result="hit"}')
            return hits == [4.0 * requests]

        # the counter is exactly the traffic's lookups (the first scrape saw none)
        wait_until(lookups_counted, timeout=20, what="every request's lookups to be scraped")
        misses = samples('cache_operations_total{job="embedded", type="lookup", result="miss"}')
        assert misses == [float(requests)]
        # the app goes idle: the next scrapes have no sample, so the series goes stale
        wait_until(
            lambda: samples(f"cache_hit_rate{selector}") == [],
            timeout=20,
            what="no hit-rate sample once the app is idle",
        )
