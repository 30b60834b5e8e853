"""The Redis collector's connection under faults produced for real: a private redis-server
stopped with SIGSTOP, and loopback RESP servers that drip, announce a 1 GiB reply, flood, or
refuse HELLO. Each run costs at most its deadline, holds at most `max_reply_bytes`, and the
collector recovers by itself."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from collectors.base import Deadline
from collectors.redis import Options, Target, build, from_client
from exporter.app import create_app
from exporter.config import load_config
from exporter.schema import ConfigError
from exporter.state import Exporter
from tests.redis_server import (
    drip,
    error,
    flood,
    like_redis,
    private_redis,
    resp_server,
)
from tests.support import scrape_headers, serve_app, wait_until

INFO = (Path(__file__).parent / "data" / "info_redis6.txt").read_bytes()
#: What a run may take beyond its deadline: thread start-up and scheduling on a busy machine.
SLACK = 0.5


def collector_for(url: str, **settings):
    return build(None, Target(name="cache", url=url, **settings))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Run:
    """`collector.run(deadline)` in a thread of its own, as the scrape engine runs it."""

    def __init__(self, collector, seconds: float) -> None:
        self.deadline = Deadline.after(seconds)
        self.result = None
        self.ended_at: float | None = None
        self.thread = threading.Thread(target=self._run, args=(collector,), daemon=True)
        self.thread.start()

    def _run(self, collector) -> None:
        self.result = collector.run(self.deadline)
        self.ended_at = time.monotonic()

    def overrun(self) -> float:
        """Seconds past its deadline the run ended (waits at most 10 s for it)."""
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the run is still blocked 10 s after its deadline"
        assert self.ended_at is not None
        return self.ended_at - self.deadline.at


@contextlib.contextmanager
def stopped_server(tmp_path: Path) -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A private redis-server, and a switch that freezes (SIGSTOP) or resumes it."""
    with private_redis(tmp_path) as server:
        assert server.process is not None
        pid = server.process.pid

        def wedge(on: bool) -> None:
            os.kill(pid, signal.SIGSTOP if on else signal.SIGCONT)

        try:
            yield server.url, wedge
        finally:
            wedge(False)


@contextlib.contextmanager
def dripping_server(tmp_path: Path) -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A loopback server whose INFO reply drips a byte every 0.2 s while wedged."""
    wedged = threading.Event()
    normal = like_redis(INFO)

    def answer(command):
        if command[0] == b"INFO" and wedged.is_set():
            return drip(b"$100000\r\n")
        return normal(command)

    with resp_server(answer) as server:
        yield server.url, lambda on: wedged.set() if on else wedged.clear()


# -- item 3 of issue 11: a wedged source costs one deadline, never more ----------------------


def test_a_dripping_reply_costs_one_deadline_and_not_the_next_run():
    """One byte every 0.2 s keeps each socket read short: only a whole-request deadline ends
    it. The next run, started as the engine does once it stopped waiting, is not held up."""
    wedged = threading.Event()
    wedged.set()

    def answer(command):
        if command[0] == b"INFO" and wedged.is_set():
            return drip(b"$100000\r\n")
        return like_redis(INFO)(command)

    with resp_server(answer) as server:
        collector = collector_for(server.url)
        first = Run(collector, 1.0)
        wait_until(lambda: first.deadline.expired(), what="the first run's deadline")
        collector.abandon()  # what the engine does when it stops waiting
        second = Run(collector, 1.0)
        assert second.overrun() < SLACK
        assert first.overrun() < SLACK
        assert (first.result.reason, second.result.reason) == ("timeout", "timeout")
        wedged.clear()
        dialled = server.connections
        result = collector.run(Deadline.after(2))
        assert result.success, result.reason
        assert server.connections == dialled + 1  # the wedged connections are never reused
        closing = threading.Thread(target=collector.close)
        closing.start()
        closing.join(timeout=SLACK)
        assert not closing.is_alive()


def test_close_does_not_wait_for_a_stuck_run():
    with resp_server(like_redis(INFO, INFO=drip(b"$100000\r\n"))) as server:
        collector = collector_for(server.url)
        stuck = Run(collector, 5.0)
        wait_until(lambda: len(server.commands) >= 2, what="the run to send INFO")
        started = time.monotonic()
        closing = threading.Thread(target=collector.close)
        closing.start()
        closing.join(timeout=SLACK)
        assert not closing.is_alive(), "close() waited for the stuck run"
        stuck.thread.join(timeout=SLACK)  # close() shut its socket down: it ends at once
        assert not stuck.thread.is_alive()
        assert time.monotonic() - started < SLACK
        assert not stuck.result.success


#: Runs against a stopped server: a leak of one socket or thread per run shows 30 times over
#: between the 10th and the last
RUNS = 40


def test_forty_runs_against_a_stopped_server_stay_flat_and_recover(tmp_path: Path):
    with stopped_server(tmp_path) as (url, wedge):
        collector = collector_for(url)
        assert collector.run(Deadline.after(2)).success
        counts = []
        wedge(True)
        for i in range(RUNS):
            result = collector.run(Deadline.after(0.05))
            collector.abandon()
            assert not result.success and result.reason in ("timeout", "connection")
            if i in (9, RUNS - 1):
                counts.append((open_fds(), threading.active_count()))
        wedge(False)
        result = wait_until(
            lambda: collector.run(Deadline.after(2)), timeout=20, what="a run after SIGCONT"
        )
        assert result.success, result.reason
        collector.close()
    (fds_10, threads_10), (fds_last, threads_last) = counts
    assert fds_last <= fds_10 and threads_last <= threads_10, f"after 10 and {RUNS}: {counts}"


#: threads (and their sockets) the engine's pool may add while abandoned runs overlap fresh ones
POOL_GROWTH = 2
#: Wedged scrapes before the baseline (the pool's threads exist), and after it: a leak of one
#: thread or socket per scrape would exceed POOL_GROWTH several times over
WARM_SCRAPES, COUNTED_SCRAPES = 4, 8


@pytest.mark.slow
@pytest.mark.parametrize("wedged_server", [stopped_server, dripping_server])
def test_metrics_answers_on_time_while_redis_is_wedged_and_recovers(tmp_path: Path, wedged_server):
    """Through /metrics: every scrape answers within its timeout with cache_up 0 while the
    server is wedged, threads and FDs stay flat, and cache_up is 1 again once it answers."""
    with wedged_server(tmp_path) as (redis_url, wedge):
        config = load_config(
            {
                "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
                "scrape": {"timeout_offset_seconds": 0.1},
                "redis": [{"name": "cache", "url": redis_url}],
            },
            env={},
        )
        exporter = Exporter(config)
        headers = scrape_headers(0.6, text=True)
        with serve_app(create_app(exporter)) as url, httpx.Client(timeout=10) as http:

            def cache_up() -> str:
                started = time.monotonic()
                response = http.get(f"{url}/metrics", headers=headers)
                assert response.status_code == 200
                assert time.monotonic() - started < 0.6 + SLACK
                line = next(x for x in response.text.splitlines() if x.startswith("cache_up"))
                return line.rsplit(" ", 1)[1]

            assert cache_up() == "1.0"
            wedge(True)
            for _ in range(WARM_SCRAPES):
                assert cache_up() == "0.0"
            baseline = (open_fds(), threading.active_count())
            for _ in range(COUNTED_SCRAPES):
                assert cache_up() == "0.0"
            # the last run may still be closing its socket when its scrape has answered; the
            # engine's pool keeps idle threads and may start one more when an abandoned run
            # overlaps a fresh one (bounded by its limit), so flat means within POOL_GROWTH of
            # the baseline after COUNTED_SCRAPES more, where a leak would add one per scrape
            wait_until(
                lambda: (
                    open_fds() <= baseline[0] + POOL_GROWTH
                    and threading.active_count() <= baseline[1] + POOL_GROWTH
                ),
                timeout=5,
                what=f"(fds, threads) back to {baseline} (+{POOL_GROWTH})",
            )
            wedge(False)
            wait_until(lambda: cache_up() == "1.0", timeout=20, what="cache_up 1 again")
        exporter.loaded.engine.close()


# -- item 4 of issue 11: reply sizes are capped before the exporter holds them ---------------


def test_a_one_gib_announcement_is_a_bad_response_at_once():
    with resp_server(like_redis(INFO, INFO=drip(b"$1073741824\r\n"))) as server:
        collector = collector_for(server.url)
        run = Run(collector, 5.0)
        assert run.overrun() < -4.0  # refused on the length line, not at the deadline
        collector.close()
    assert run.result.reason == "bad_response"


@pytest.mark.parametrize(
    "command, head, item",
    [
        ("INFO", b"$1073741824\r\n", b"a"),  # sent as fast as it is read
        ("LATENCY", b"*1073741824\r\n", b":1\r\n"),  # many small elements: no length to check
    ],
)
def test_a_flood_is_cut_at_the_reply_cap(command, head, item):
    sent = [0]
    replies = {command: flood(head, item, sent)}
    with resp_server(like_redis(INFO, **replies)) as server:
        collector = build(Options(max_reply_bytes=1 << 20), Target(name="cache", url=server.url))
        result = collector.run(Deadline.after(5))
        collector.close()
    assert result.reason == "bad_response"
    # what the server got rid of: the exporter's 1 MiB plus the kernel's socket buffers
    assert sent[0] < 64 << 20


def test_a_reply_that_is_not_resp_is_a_bad_response():
    with resp_server(like_redis(INFO, INFO=b"?garbage\r\n")) as server:
        collector = collector_for(server.url)
        result = collector.run(Deadline.after(5))
        collector.close()
    assert result.reason == "bad_response"


def test_the_reply_cap_is_configurable_and_checked():
    config = load_config(
        {
            "collectors": {"redis": {"max_reply_bytes": 100000}},
            "redis": [{"name": "a", "url": "redis://127.0.0.1:1"}],
        },
        env={},
    )
    assert config.options("redis").max_reply_bytes == 100000
    with pytest.raises(ConfigError) as caught:
        load_config({"collectors": {"redis": {"max_reply_bytes": 1000}}}, env={})
    assert caught.value.problems == [
        "collectors.redis.max_reply_bytes: must be at least 65536 (INFO ALL is tens of KiB)"
    ]


# -- item 9 of issue 11: servers that refuse HELLO 3 are read over RESP2 ---------------------


REFUSAL = error(b"ERR unknown command 'HELLO', with args beginning with: '3'")  # Redis 5


def test_no_hello_by_default_so_redis5_is_read():
    with resp_server(like_redis(INFO, HELLO=REFUSAL)) as server:
        collector = collector_for(server.url)
        result = collector.run(Deadline.after(5))
        collector.close()
    assert result.success, result.reason
    assert b"HELLO" not in [c[0] for c in server.commands]


def test_a_resp3_client_falls_back_to_resp2_when_hello_is_refused():
    with resp_server(like_redis(INFO, HELLO=REFUSAL)) as server:
        client = redis.Redis(host="127.0.0.1", port=server.port, protocol=3)
        collector = from_client(client)
        first = collector.run(Deadline.after(5))
        server.drop_clients()  # as a restart does
        second = collector.run(Deadline.after(5))  # reconnects: RESP2 at once
        collector.close()
    assert first.success and second.success, (first.reason, second.reason)
    hellos = [c for c in server.commands if c[0] == b"HELLO"]
    assert hellos == [[b"HELLO", b"3"]]
    assert server.connections == 3  # HELLO refused, RESP2, and the reconnect


# -- item 9 of issue 11: one bad INFO line costs that line, not the instance -----------------


def test_a_server_sending_bad_values_is_served_without_them():
    text = INFO.replace(b"\ncmdstat_get:calls=", b"\ncmdstat_get:calls=ABC")
    text = text.replace(b"\nkeyspace_misses:", b"\nkeyspace_misses:-")
    assert text.count(b"ABC") == 1 and text.count(b"keyspace_misses:-") == 1
    with resp_server(like_redis(text)) as server:
        collector = collector_for(server.url)
        result = collector.run(Deadline.after(5))
        collector.close()
    assert result.success, result.reason
    samples = {
        (s.name, s.labels.get("command")): s.value for f in result.families for s in f.samples
    }
    assert samples[("cache_up", None)] == 1.0
    assert samples[("redis_exporter_info_fields_skipped", None)] == 2.0
    assert ("redis_commands_total", "get") not in samples
    assert samples[("redis_commands_total", "set")] > 0
    assert any("cmdstat_get" in note for note in result.notes)
