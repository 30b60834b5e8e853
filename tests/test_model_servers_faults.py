"""Model servers that misbehave for real: a socket that drips one byte every half second, a run
the scrape engine gave up on, idle connections closed by the server, secrets in URLs."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import ssl
import threading
import time

import httpcore
import httpx
import pytest
import uvicorn

from collectors.base import Deadline
from collectors.model_servers import PRESETS
from collectors.model_servers.client import KEEPALIVE_EXPIRY_SECONDS
from collectors.model_servers.deadline import DeadlineNetwork
from collectors.model_servers.urls import mask_urls, shown_url
from exporter.app import create_app
from exporter.config import load_config
from exporter.scrape import ScrapeEngine, Unit
from exporter.state import Exporter
from exporter.units import build_units
from tests.model_server_apps import (
    Behaviour,
    DripServer,
    make_app,
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
    scrape,
    value,
)
from tests.support import free_port, registry_of, serve_app


def generic(url: str, **extra) -> dict:
    return {"name": "drip", "url": f"{url}/healthz", **extra}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_in_thread(collector, seconds: float) -> tuple[threading.Thread, list]:
    results: list = []
    thread = threading.Thread(target=lambda: results.append(collector.run(Deadline.after(seconds))))
    thread.start()
    return thread, results


# -- a whole-request deadline -------------------------------------------------------------


def test_a_dripping_server_costs_one_deadline_not_the_whole_drip(make_collector):
    with DripServer(interval=0.5) as server:
        collector = make_collector(generic(server.url))
        started = time.monotonic()
        thread, results = run_in_thread(collector, 1.0)
        thread.join(timeout=3.0)  # the drip would take ~45 s: a per-read timeout never fires
        elapsed = time.monotonic() - started
        assert not thread.is_alive(), f"the probe was still reading after {elapsed:.1f} s"
    (result,) = results
    assert not result.success and result.reason == "timeout"
    assert elapsed < 1.0 + 0.3  # the deadline, plus scheduling slack on a loaded machine


def test_the_scrape_after_a_dripping_one_recovers_on_a_fresh_connection(make_collector):
    # drips faster than any per-read timeout: only a whole-request deadline ends the request
    with DripServer(interval=0.2, drip_connections=1) as server:
        collector = make_collector(generic(server.url))
        engine = ScrapeEngine([Unit("model_servers", "drip", collector)])

        async def two_scrapes() -> list:
            first = await engine.collect(engine.units, Deadline.after(1.0))
            second = await engine.collect(engine.units, Deadline.after(2.0))
            return [first[0][1], second[0][1]]

        try:
            first, second = asyncio.run(two_scrapes())
        finally:
            engine.close()
        assert server.connections == 2
    assert not first.success and first.reason == "timeout"
    assert second.success, "the second scrape joined the stuck first one"
    registry = registry_of(second.families)
    assert value(registry, "model_server_availability", server="drip") == 1.0
    assert (
        value(registry, "model_server_probe_requests_total", server="drip", status="timeout") == 1
    )


def test_an_abandoned_run_is_cut_off_and_the_next_run_dials_afresh(make_collector):
    with DripServer(interval=0.5, drip_connections=1) as server:
        collector = make_collector(generic(server.url))
        stuck, _ = run_in_thread(collector, 30.0)  # a long deadline: only abandon() ends it
        deadline = time.monotonic() + 5
        while server.connections < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the request is on the wire and the drip has begun
        collector.abandon()  # what the scrape engine does once it stopped waiting
        result, _ = scrape(collector, seconds=2.0)
        stuck.join(timeout=1.0)
        assert not stuck.is_alive(), "abandon() left the stuck run blocked in its read"
        assert server.connections == 2
    assert result.success


def test_a_cut_off_request_keeps_its_socket_until_its_own_thread_lets_go():
    """While a request is in flight the cut only shuts the socket down and the request's own
    thread closes it as it ends: closing it from the cutting thread would free its descriptor
    for the next connection while the request's thread may be about to wait on that number
    (it then read another connection)."""
    closed: list[str] = []
    with DripServer(interval=0.5, drip_connections=1) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        network = DeadlineNetwork()
        with network.until(time.monotonic() + 5):  # a request of this thread, in flight
            stream = network.connect_tcp(host, int(port))
            sock = stream.get_extra_info("socket")
            stream.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            network.cut_off(lambda: closed.append(threading.current_thread().name))
            assert closed == []  # not closed under the request...
            assert sock.fileno() != -1  # ...so its descriptor's number stays its own
            assert stream.read(1024) in (b"", b"H")  # and the read it wakes ends at once
        assert closed == [threading.current_thread().name]  # closed as the request ended
        with pytest.raises(httpcore.ConnectError), network.until(time.monotonic() + 5):
            pass  # nothing starts on a network that was cut off
        stream.close()
    idle = DeadlineNetwork()
    idle.cut_off(lambda: closed.append("at once"))
    assert closed[-1] == "at once"  # nothing in flight: closed by the cut itself


def test_close_does_not_wait_for_a_stuck_fetch(make_collector):
    with DripServer(interval=0.5) as server:
        collector = make_collector(generic(server.url))
        stuck, _ = run_in_thread(collector, 30.0)
        time.sleep(0.3)
        started = time.monotonic()
        collector.close()
        closing = time.monotonic() - started
        stuck.join(timeout=1.0)
        assert not stuck.is_alive()
        clients = live_objects(httpcore.ConnectionPool)
        after_close, _ = scrape(collector, seconds=1.0)  # a run that starts after close()
        # makes no client that nobody closes
        assert live_objects(httpcore.ConnectionPool) == clients
    assert closing < 0.5
    assert not after_close.success


def test_threads_and_fds_stay_flat_over_200_scrapes_of_a_dripping_server(make_collector):
    # a byte every 20 ms: well inside any per-read timeout, a whole answer takes ~1.8 s
    with DripServer(interval=0.02) as server:
        collector = make_collector(generic(server.url))
        engine = ScrapeEngine([Unit("model_servers", "drip", collector)])

        async def scrapes(n: int) -> list[bool]:
            out = []
            for _ in range(n):
                results = await engine.collect(engine.units, Deadline.after(0.1))
                out.append(results[0][1].success)
            return out

        try:
            asyncio.run(scrapes(10))  # warm up: executor threads, the first client
            assert server.idle()  # the server's side of closed connections (same process)
            threads, fds = threading.active_count(), open_fds()
            outcomes = asyncio.run(scrapes(200))
            assert server.idle()
            after_threads, after_fds = threading.active_count(), open_fds()
        finally:
            engine.close()
    print(f"\n200 scrapes of a dripping server: threads {threads} -> {after_threads}, "
          f"fds {fds} -> {after_fds}, server connections {server.connections}")  # fmt: skip
    assert not any(outcomes)
    # every scrape runs its own probe on its own connection; a few may share (single flight)
    # a run that is just returning at its deadline. Joining stuck runs would leave ~20.
    assert server.connections >= 150, "scrapes joined stuck runs instead of starting their own"
    assert after_threads <= threads + 2
    assert after_fds <= fds + 4


# -- kept-alive connections the server closes ----------------------------------------------


def test_scrapes_spaced_just_past_the_server_idle_timeout_never_fail(make_collector):
    """uvicorn closes idle connections after `timeout_keep_alive`; a request sent as it does
    meets a closed socket. Before the retry, about 2% of these scrapes failed `connection`."""
    scrapes, keep_alive = 300, 0.1
    behaviour = Behaviour()
    with serve_app(make_app("generic", behaviour), timeout_keep_alive=keep_alive) as url:
        collector = make_collector(generic(url))
        failures = []
        for i in range(scrapes):
            time.sleep(keep_alive + random.uniform(-0.001, 0.001))
            result, registry = scrape(collector, seconds=2.0)
            if not result.success:
                failures.append((i, result.reason))
    assert failures == []
    assert (
        value(registry, "model_server_probe_requests_total", server="drip", status="2xx") == scrapes
    )
    assert (
        value(registry, "model_server_probe_requests_total", server="drip", status="connection")
        == 0
    )
    assert len(behaviour.paths) == scrapes  # every retried request was answered once


def test_idle_connections_are_dropped_before_uvicorns_idle_timeout():
    assert KEEPALIVE_EXPIRY_SECONDS < uvicorn.Config(app=None).timeout_keep_alive


def test_a_fresh_connection_that_fails_is_not_retried(make_collector):
    with DripServer(hang_up=True) as server:
        collector = make_collector(generic(server.url))
        result, registry = scrape(collector, seconds=2.0)
        assert server.connections == 1
    assert not result.success and result.reason == "connection"
    assert (
        value(registry, "model_server_probe_requests_total", server="drip", status="connection")
        == 1
    )


# -- secrets in URLs ------------------------------------------------------------------------

KEY, TOKEN, USER = "key-secret-5e1f", "tok-secret-77aa", "user-secret-c0de"


def test_url_query_secrets_never_show_in_logs_pages_or_errors(caplog):
    vllm, generic_behaviour = Behaviour(), Behaviour()
    query = f"?api_key={KEY}&token={TOKEN}"
    with (
        serve_app(make_app("vllm", vllm)) as vllm_url,
        serve_app(make_app("generic", generic_behaviour)) as generic_url,
        DripServer(hang_up=True) as hanging,
    ):
        config = load_config(
            {
                "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
                "model_servers": [
                    {"name": "llm", "kind": "vllm", "url": vllm_url + query, "models": ["ner"]},
                    {"name": "health", "url": f"{generic_url}/healthz{query}"},
                    {"name": "gone", "url": f"http://127.0.0.1:{free_port()}/h{query}"},
                    {"name": "hangs", "url": f"{hanging.url}/h{query}&x={USER}"},
                ],
            },
            env={},
        )
        exporter = Exporter(config)
        with caplog.at_level(logging.DEBUG), serve_app(create_app(exporter)) as base:
            pages = [
                httpx.get(base + path, params=params)
                for path, params in [
                    ("/metrics", {}),
                    ("/", {}),
                    ("/sd", {}),
                    *(("/probe", {"target": t}) for t in ("llm", "health", "gone", "hangs")),
                ]
            ]
            text = " ".join(p.text for p in pages) + repr(config) + caplog.text
        asyncio.run(exporter.aclose())
    # the probes did go out with the real URL: the secrets reached the servers
    assert "/health" in vllm.paths and "/v1/models" in vllm.paths
    assert "/healthz" in generic_behaviour.paths
    assert hanging.connections >= 1
    assert "connect_tcp" in caplog.text  # httpcore did log its requests (hosts, ports only)
    for secret in (KEY, TOKEN, USER):
        assert secret not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://h:8000/v1?api_key=k1&flag", "http://h:8000/v1?api_key=***&flag"),
        ("https://u:pw@h/x?t=1#frag", "https://***@h/x?t=***"),
        ("http://tok@[::1]:9/", "http://***@[::1]:9/"),
        ("http://h/plain", "http://h/plain"),
        ("http://h:99999", "***"),  # a port out of range does not parse: show nothing
    ],
)
def test_shown_urls_keep_keys_and_hosts_but_no_values(url, shown):
    assert shown_url(url) == shown
    assert mask_urls(f"GET {url} 200") == f"GET {shown} 200"


# -- building collectors is free ------------------------------------------------------------


def live_objects(kind: type) -> int:
    gc.collect()
    return sum(isinstance(o, kind) for o in gc.get_objects())


def test_building_collectors_opens_no_socket_and_makes_no_client(make_collector):
    kinds = list(PRESETS)
    entries = [
        {"name": f"m{i}", "kind": kinds[i % len(kinds)], "url": f"https://127.0.0.1:{1 + i}"}
        for i in range(1000)
    ]
    for entry in entries:  # Triton's metrics port is plain HTTP: an https one names it
        if entry["kind"] == "triton":
            entry["metrics_url"] = "http://127.0.0.1:8002/metrics"
    config = load_config({"model_servers": entries}, env={})
    clients, contexts, fds = (
        live_objects(httpcore.ConnectionPool),
        live_objects(ssl.SSLContext),
        open_fds(),
    )
    units = build_units(config)
    assert len(units) >= 1000
    assert live_objects(httpcore.ConnectionPool) == clients
    assert live_objects(ssl.SSLContext) == contexts
    assert open_fds() == fds
    # the first fetch makes the client: one collector, one client
    behaviour = Behaviour()
    with serve_app(make_app("vllm", behaviour)) as url:
        collector = make_collector({"name": "llm", "kind": "vllm", "url": url})
        assert live_objects(httpcore.ConnectionPool) == clients
        result, _ = scrape(collector)
        assert result.success
        assert live_objects(httpcore.ConnectionPool) == clients + 1
