"""exporter/runs.py: overrun collections are abandoned, bounded, and never block later scrapes.

Every wedged source here is a real loopback socket that accepts and never answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import httpx
import pytest
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from collectors.base import Deadline, ScrapeContext, SourceCollector
from exporter.exposition import Format
from exporter.runs import CHAIN_THREADS, MAX_ABANDONED
from exporter.scrape import ScrapeEngine, Unit
from tests.loopback_sources import SilentListener, slow_http_server


class WedgingCollector(SourceCollector):
    """Its first `wedged_runs` fetches block on a silent socket for `block` seconds, ignoring
    the deadline (a badly written source); later ones answer at once with their call number.

    `abandon()` shuts the stuck sockets down, the way a real collector drops its connection.
    """

    collector = "wedging"

    def __init__(self, port: int, *, block: float, wedged_runs: int) -> None:
        super().__init__("w")
        self.port = port
        self.block = block
        self.wedged_runs = wedged_runs
        self.calls = 0
        self.abandoned = 0
        self.late_results = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []

    def fetch(self, ctx: ScrapeContext):
        with self._lock:
            self.calls += 1
            call = self.calls
        if call <= self.wedged_runs:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.block)
            with self._lock:
                self._open.append(sock)
            try:
                sock.settimeout(self.block)
                try:
                    sock.recv(1)
                except TimeoutError:
                    pass
            finally:
                with self._lock:
                    self._open.remove(sock)
                sock.close()
            with self._lock:
                self.late_results += 1
        yield GaugeMetricFamily("wedging_call", "Which call answered.", value=float(call))

    def abandon(self) -> None:
        with self._lock:
            self.abandoned += 1


class DeadlineCollector(SourceCollector):
    """Reads from a silent socket with a timeout derived from the deadline, as real collectors
    must; `abandon()` shuts the stuck socket down so its read ends at once."""

    collector = "wedged"

    def __init__(self, port: int) -> None:
        super().__init__("silent")
        self.port = port
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def fetch(self, ctx: ScrapeContext):
        with socket.create_connection(
            ("127.0.0.1", self.port), timeout=ctx.deadline.timeout()
        ) as sock:
            with self._lock:
                self._open.add(sock)
            try:
                sock.settimeout(ctx.deadline.timeout())
                sock.sendall(b"INFO\r\n")
                sock.recv(1)  # never answered
            finally:
                with self._lock:
                    self._open.discard(sock)
        yield GaugeMetricFamily("wedged_value", "Never reached.", value=1.0)

    def abandon(self) -> None:
        with self._lock:
            stuck = list(self._open)
        for sock in stuck:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Quick(SourceCollector):
    collector = "quick"

    def fetch(self, ctx: ScrapeContext):
        yield GaugeMetricFamily("quick_value", "Always there.", value=7.0)


def scrape(engine: ScrapeEngine, seconds: float) -> dict[tuple[str, tuple], float]:
    body = asyncio.run(engine.render(engine.units, Deadline.after(seconds), Format.TEXT, False))
    got = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return got


def self_metric(got, name: str, kind: str, target: str) -> float:
    return got[(name, (("collector", kind), ("target", target)))]


def units(*collectors: SourceCollector) -> list[Unit]:
    return [Unit(c.collector, c.name, c) for c in collectors]


@pytest.fixture
def silent():
    with SilentListener() as listener:
        yield listener


def test_the_scrape_after_an_overrun_starts_afresh_and_the_late_result_is_dropped(silent):
    collector = WedgingCollector(silent.port, block=1.0, wedged_runs=1)
    engine = ScrapeEngine(units(collector))
    first = scrape(engine, 0.2)
    assert self_metric(first, "afirgen_exporter_collector_success", "wedging", "w") == 0
    assert engine.status[("wedging", "w")].reason == "timeout"
    second = scrape(engine, 2.0)  # while the first run is still stuck
    assert self_metric(second, "afirgen_exporter_collector_success", "wedging", "w") == 1
    assert second[("wedging_call", ())] == 2.0  # a fresh run, not the stuck one
    assert self_metric(second, "afirgen_exporter_collections_abandoned_total", "wedging", "w") == 1
    assert self_metric(second, "afirgen_exporter_collections_stuck", "wedging", "w") == 1
    deadline = time.monotonic() + 5
    while collector.late_results < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert collector.late_results == 1  # the stuck run did end, on its own timeout
    third = scrape(engine, 2.0)
    assert third[("wedging_call", ())] == 3.0  # its late answer (call 1) was never served
    assert self_metric(third, "afirgen_exporter_collections_stuck", "wedging", "w") == 0
    assert collector.abandoned == 1
    engine.close()


def test_abandoned_runs_are_bounded_then_the_target_is_down_without_new_threads(silent):
    collector = WedgingCollector(silent.port, block=2.0, wedged_runs=100)
    good = Quick("q")
    engine = ScrapeEngine(units(collector, good))
    threads_before = threading.active_count()
    for _ in range(10):
        got = scrape(engine, 0.1)
        assert self_metric(got, "afirgen_exporter_collector_success", "wedging", "w") == 0
        assert self_metric(got, "afirgen_exporter_collector_success", "quick", "q") == 1
    assert collector.calls == MAX_ABANDONED  # no run started while two were stuck
    assert collector.abandoned == MAX_ABANDONED
    assert self_metric(got, "afirgen_exporter_collections_stuck", "wedging", "w") == MAX_ABANDONED
    assert (
        self_metric(got, "afirgen_exporter_collections_abandoned_total", "wedging", "w")
        == MAX_ABANDONED
    )
    assert engine.status[("wedging", "w")].reason == "timeout"
    assert any("still running" in note for note in engine.status[("wedging", "w")].notes)
    # the two stuck threads, one for the quick collector, the encoder and the janitor
    assert threading.active_count() - threads_before <= MAX_ABANDONED + 4
    # once the stuck runs end on their own, the target is tried again
    deadline = time.monotonic() + 10
    while collector.late_results < MAX_ABANDONED and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.05)
    scrape(engine, 0.1)
    assert collector.calls == MAX_ABANDONED + 1
    engine.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_threads_and_fds_stay_flat_over_200_scrapes_with_wedged_sources(silent):
    wedged = DeadlineCollector(silent.port)
    stubborn = WedgingCollector(silent.port, block=2.0, wedged_runs=10**6)
    good = Quick("q")
    engine = ScrapeEngine(units(wedged, stubborn, good))
    seconds = 0.15
    scrape(engine, seconds)  # start the pools' threads
    threads_before, fds_before = threading.active_count(), _fds()
    peaks = {"threads": threads_before, "fds": fds_before}
    outcomes: list[tuple[float, float]] = []

    async def scrapes() -> dict[tuple[str, tuple], float]:
        got: dict[tuple[str, tuple], float] = {}
        for _ in range(200):
            body = await engine.render(engine.units, Deadline.after(seconds), Format.TEXT, False)
            got = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode())
                for s in family.samples
            }
            outcomes.append(
                (
                    self_metric(got, "afirgen_exporter_collector_success", "quick", "q"),
                    self_metric(got, "afirgen_exporter_collector_success", "wedged", "silent"),
                )
            )
            peaks["threads"] = max(peaks["threads"], threading.active_count())
            peaks["fds"] = max(peaks["fds"], _fds())
        return got

    got = asyncio.run(scrapes())
    assert outcomes == [(1.0, 0.0)] * 200  # the good one answered every time, the wedged never
    # per wedged unit at most its run and two abandoned ones, each holding a socket (and the
    # listener's end of it, in this same process)
    per_unit = MAX_ABANDONED + 1
    assert peaks["threads"] - threads_before <= 2 * per_unit
    assert peaks["fds"] - fds_before <= 2 * 2 * per_unit + 2
    # its reads end at the deadline: a run merely slow is waited for, never abandoned...
    assert self_metric(got, "afirgen_exporter_collections_abandoned_total", "wedged", "silent") == 0
    # ...while the stubborn one ignores it, and its runs are
    assert self_metric(got, "afirgen_exporter_collections_abandoned_total", "wedging", "w") > 0
    # the stubborn one: two runs per 2 s block at most, not one per scrape
    assert stubborn.calls <= (200 * seconds / 2.0 + 1) * MAX_ABANDONED
    engine.close()
    deadline = time.monotonic() + 5
    while silent.open_connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert silent.open_connections() == 0  # every socket was closed: nothing leaked


def test_a_scrape_with_more_time_joins_a_run_then_starts_afresh_when_it_is_abandoned(silent):
    collector = WedgingCollector(silent.port, block=1.5, wedged_runs=1)
    engine = ScrapeEngine(units(collector))

    async def overlapping():
        short = engine.render(engine.units, Deadline.after(0.2), Format.TEXT, False)
        long = engine.render(engine.units, Deadline.after(3.0), Format.OPENMETRICS, False)
        return await asyncio.gather(short, long)

    short, long = asyncio.run(overlapping())
    assert b'afirgen_exporter_collector_success{collector="wedging",target="w"} 0.0' in short
    assert b"wedging_call 2.0" in long  # joined run 1 until its deadline, then a fresh run
    assert collector.calls == 2 and collector.abandoned == 1
    engine.close()


def test_a_unit_timeout_cuts_that_unit_while_the_others_finish(silent):
    class Slow(SourceCollector):
        collector = "slow"

        def fetch(self, ctx: ScrapeContext):
            time.sleep(0.6)
            yield GaugeMetricFamily("slow_value", "Slow but fine.", value=1.0)

    wedged = DeadlineCollector(silent.port)
    engine = ScrapeEngine(
        [Unit("wedged", "silent", wedged, timeout_seconds=0.2), Unit("slow", "s", Slow("s"))]
    )
    got = scrape(engine, 5.0)
    assert self_metric(got, "afirgen_exporter_collector_success", "slow", "s") == 1
    assert self_metric(got, "afirgen_exporter_collector_success", "wedged", "silent") == 0
    waited = self_metric(got, "afirgen_exporter_collector_duration_seconds", "wedged", "silent")
    assert waited == pytest.approx(0.2, abs=0.02)  # its own 0.2 s, not the slow one's 0.6 s
    engine.close()


def test_a_run_that_failed_within_a_shorter_deadline_never_decides_a_longer_scrape():
    class SlowHttp(SourceCollector):
        """GETs a real loopback server that answers after 0.3 s, within the deadline."""

        collector = "slowhttp"

        def __init__(self, port: int) -> None:
            super().__init__("h")
            self.port = port
            self.running = 0
            self.most_running = 0
            self.calls = 0
            self._lock = threading.Lock()

        def fetch(self, ctx: ScrapeContext):
            with self._lock:
                self.calls += 1
                self.running += 1
                self.most_running = max(self.most_running, self.running)
            try:
                answer = httpx.get(f"http://127.0.0.1:{self.port}/", timeout=ctx.deadline.timeout())
            finally:
                with self._lock:
                    self.running -= 1
            yield GaugeMetricFamily("slowhttp_status", "HTTP status.", value=answer.status_code)

    with slow_http_server(0.3) as port:
        collector = SlowHttp(port)
        engine = ScrapeEngine(units(collector))

        async def overlapping():
            # the short scrape starts the run; its read times out (a failure, not an overrun)
            short = asyncio.ensure_future(
                engine.render(engine.units, Deadline.after(0.1), Format.TEXT, False)
            )
            await asyncio.sleep(0.02)
            long = engine.render(engine.units, Deadline.after(5.0), Format.TEXT, False)
            return await asyncio.gather(short, long)

        short, long = asyncio.run(overlapping())
        engine.close()
    assert b'afirgen_exporter_collector_success{collector="slowhttp",target="h"} 0.0' in short
    assert b'afirgen_exporter_collector_success{collector="slowhttp",target="h"} 1.0' in long
    assert b"slowhttp_status 200.0" in long
    assert collector.calls == 2 and collector.most_running == 1  # after it, never beside it


class Recording(SourceCollector):
    """Answers at once; remembers the thread of each of its fetches."""

    collector = "recording"

    def __init__(self, name: str, threads: list[str]) -> None:
        super().__init__(name)
        self.threads = threads

    def fetch(self, ctx: ScrapeContext):
        self.threads.append(threading.current_thread().name)
        yield GaugeMetricFamily(f"recording_{self.name}", "Always there.", value=1.0)


class Sleepy(SourceCollector):
    """Takes 30 ms: the slowest, started first in a thread of its own."""

    collector = "sleepy"

    def fetch(self, ctx: ScrapeContext):
        time.sleep(0.03)
        yield GaugeMetricFamily("sleepy_value", "Slow but fine.", value=1.0)


class TurnsWedged(WedgingCollector):
    """Answers at once for its first `quick_runs` fetches, then blocks like WedgingCollector."""

    collector = "turns_wedged"

    def __init__(self, port: int, name: str, *, quick_runs: int) -> None:
        super().__init__(port, block=1.0, wedged_runs=0)
        self.name = name
        self.quick_runs = quick_runs

    def fetch(self, ctx: ScrapeContext):
        with self._lock:
            wedge = self.calls >= self.quick_runs
        if wedge:
            self.wedged_runs = 10**6
        return super().fetch(ctx)


def test_quick_units_share_threads_once_they_answered():
    threads: list[str] = []
    collectors = [Recording(f"r{i}", threads) for i in range(6)]
    engine = ScrapeEngine([Unit(c.collector, c.name, c) for c in collectors])
    scrape(engine, 5.0)  # nothing known yet: a thread each
    for _ in range(20):
        threads.clear()
        got = scrape(engine, 5.0)
        assert all(got[(f"recording_{c.name}", ())] == 1.0 for c in collectors)
        # the first started alone, the others taken in turn by the chain's threads
        assert len(set(threads)) <= 1 + CHAIN_THREADS, threads
    engine.close()


def test_a_unit_chained_behind_wedged_ones_gets_its_own_thread_in_time(silent):
    threads: list[str] = []
    wedging = [TurnsWedged(silent.port, f"w{i}", quick_runs=2) for i in range(CHAIN_THREADS)]
    late = Recording("late", threads)
    engine = ScrapeEngine(
        [Unit("sleepy", "s", Sleepy("s")), *(Unit(w.collector, w.name, w) for w in wedging)]
        + [Unit(late.collector, late.name, late)]
    )
    for _ in range(2):  # everybody answers quickly: the wedging ones and `late` are chained
        got = scrape(engine, 5.0)
        assert self_metric(got, "afirgen_exporter_collector_success", "recording", "late") == 1
    # every chain thread is now stuck in a wedged unit ahead of `late`
    got = scrape(engine, 0.5)
    for w in wedging:
        assert self_metric(got, "afirgen_exporter_collector_success", w.collector, w.name) == 0
    assert self_metric(got, "afirgen_exporter_collector_success", "recording", "late") == 1
    engine.close()
