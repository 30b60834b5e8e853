"""exporter/scrape.py: concurrency, deadlines, isolation and single flight, with real sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import pytest
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from collectors.base import Deadline, ScrapeContext, SourceCollector, up_family
from collectors.specs import by_name
from exporter import self_metrics
from exporter.config import load_config
from exporter.exposition import Format
from exporter.scrape import ScrapeEngine, Unit
from exporter.state import Exporter


class CountingCollector(SourceCollector):
    """Answers after `delay` seconds and counts how often it was really collected."""

    collector = "counting"

    def __init__(self, name: str = "c", delay: float = 0.0) -> None:
        super().__init__(name)
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def fetch(self, ctx: ScrapeContext):
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        yield GaugeMetricFamily("counting_value", "A value.", value=42.0)


class RaisingCollector(SourceCollector):
    """Yields one family and then fails: the family must not be served."""

    collector = "raising"

    def fetch(self, ctx: ScrapeContext):
        yield GaugeMetricFamily("raising_partial", "Half-built.", value=1.0)
        raise RuntimeError("boom with password=hunter2 in it")

    def down_families(self):
        return [up_family("raising_up", "Up.", ["target"], [self.name], False)]


class HungSourceCollector(SourceCollector):
    """Talks to a TCP listener that accepts and never answers, honouring the deadline."""

    collector = "hung"

    def __init__(self, port: int) -> None:
        super().__init__("hung")
        self.port = port

    def fetch(self, ctx: ScrapeContext):
        with socket.create_connection(
            ("127.0.0.1", self.port), timeout=ctx.deadline.timeout()
        ) as s:
            s.settimeout(ctx.deadline.timeout())
            s.recv(1)  # never answered: times out at the deadline
        yield GaugeMetricFamily("hung_value", "Never reached.", value=1.0)


class IgnoringDeadlineCollector(SourceCollector):
    """Blocks on a silent listener for far longer than the deadline (a badly written source)."""

    collector = "stubborn"

    def __init__(self, port: int, block: float) -> None:
        super().__init__("stubborn")
        self.port = port
        self.block = block

    def fetch(self, ctx: ScrapeContext):
        with socket.create_connection(("127.0.0.1", self.port), timeout=self.block) as s:
            s.settimeout(self.block)
            try:
                s.recv(1)
            except TimeoutError:
                pass
        yield GaugeMetricFamily("stubborn_value", "Late.", value=1.0)


@pytest.fixture
def silent_listener():
    """A real TCP listener that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept_loop():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    result = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            result[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return result


def units_of(*collectors):
    return [Unit(c.collector, c.name, c) for c in collectors]


def run(coro):
    return asyncio.run(coro)


def test_a_raising_collector_serves_only_its_down_report_and_others_still_answer(caplog):
    good, bad = CountingCollector(), RaisingCollector("r1")
    engine = ScrapeEngine(units_of(good, bad))
    with caplog.at_level(logging.WARNING):
        body = run(engine.render(engine.units, Deadline.after(5), Format.TEXT, False))
    got = samples(body)
    assert got[("counting_value", ())] == 42.0
    assert ("raising_partial", ()) not in got
    assert got[("raising_up", (("target", "r1"),))] == 0.0
    assert (
        got[("afirgen_exporter_collector_success", (("collector", "raising"), ("target", "r1")))]
        == 0.0
    )
    assert (
        got[("afirgen_exporter_collector_success", (("collector", "counting"), ("target", "c")))]
        == 1.0
    )
    failures = [r.getMessage() for r in caplog.records if "target down" in r.getMessage()]
    assert len(failures) == 1
    assert "reason=error" in failures[0] and "hunter2" not in failures[0]
    assert engine.status[("raising", "r1")].reason == "error"
    engine.close()


def test_a_hung_source_costs_one_deadline_and_reads_timeout(silent_listener):
    good, hung = CountingCollector(), HungSourceCollector(silent_listener)
    engine = ScrapeEngine(units_of(good, hung))
    started = time.monotonic()
    body = run(engine.render(engine.units, Deadline.after(0.5), Format.TEXT, False))
    elapsed = time.monotonic() - started
    got = samples(body)
    assert got[("counting_value", ())] == 42.0
    assert ("hung_value", ()) not in got
    assert (
        got[("afirgen_exporter_collector_success", (("collector", "hung"), ("target", "hung")))]
        == 0
    )
    assert engine.status[("hung", "hung")].reason == "timeout"
    assert elapsed < 5.0  # bounded by the deadline, not by the silent peer
    engine.close()


def test_a_collector_that_ignores_the_deadline_is_cut_off_by_the_engine(silent_listener):
    stubborn = IgnoringDeadlineCollector(silent_listener, block=3.0)
    engine = ScrapeEngine(units_of(stubborn, CountingCollector()))
    started = time.monotonic()
    body = run(engine.render(engine.units, Deadline.after(0.3), Format.TEXT, False))
    answered_after = time.monotonic() - started
    got = samples(body)
    assert (
        got[
            (
                "afirgen_exporter_collector_success",
                (("collector", "stubborn"), ("target", "stubborn")),
            )
        ]
        == 0
    )
    assert got[("counting_value", ())] == 42.0
    assert engine.status[("stubborn", "stubborn")].reason == "timeout"
    # answered long before the collector's own 3 s block ended
    assert answered_after < 2.5
    engine.close()


def test_concurrent_scrapes_share_one_collection_per_collector():
    slow = CountingCollector(delay=0.4)
    engine = ScrapeEngine(units_of(slow))

    async def eight_scrapes():
        # different formats/encodings so that the whole-body sharing does not hide the count
        variants = [
            (Format.TEXT, False),
            (Format.TEXT, True),
            (Format.OPENMETRICS, False),
            (Format.OPENMETRICS, True),
        ] * 2
        return await asyncio.gather(
            *(engine.render(engine.units, Deadline.after(5), fmt, gz) for fmt, gz in variants)
        )

    bodies = run(eight_scrapes())
    assert len(bodies) == 8
    assert slow.calls == 1
    engine.close()


def test_identical_concurrent_scrapes_share_one_rendered_body():
    slow = CountingCollector(delay=0.3)
    engine = ScrapeEngine(units_of(slow))

    async def scrapes():
        return await asyncio.gather(
            *(engine.render(engine.units, Deadline.after(5), Format.TEXT, True) for _ in range(8))
        )

    bodies = run(scrapes())
    assert all(body is bodies[0] for body in bodies)
    assert slow.calls == 1
    engine.close()


def test_sequential_scrapes_collect_again():
    counting = CountingCollector()
    engine = ScrapeEngine(units_of(counting))
    for _ in range(3):
        run(engine.render(engine.units, Deadline.after(5), Format.TEXT, False))
    assert counting.calls == 3
    engine.close()


def test_unit_timeout_is_applied_inside_the_scrape_deadline(silent_listener):
    hung = HungSourceCollector(silent_listener)
    engine = ScrapeEngine([Unit("hung", "hung", hung, timeout_seconds=0.2)])
    started = time.monotonic()
    run(engine.render(engine.units, Deadline.after(10), Format.TEXT, False))
    assert time.monotonic() - started < 5.0
    assert engine.status[("hung", "hung")].reason == "timeout"
    engine.close()


def test_namespace_prefixes_every_family():
    engine = ScrapeEngine(units_of(CountingCollector()), namespace="afirgen")
    got = samples(run(engine.render(engine.units, Deadline.after(5), Format.TEXT, False)))
    assert got[("afirgen_counting_value", ())] == 42.0
    assert all(name.startswith("afirgen_") for name, _ in got)
    engine.close()


def test_series_dropped_counts_what_a_budget_folded():
    class Budgeted(SourceCollector):
        collector = "budgeted"

        def fetch(self, ctx):
            kept = ctx.keep_top({f"k{i}": float(i) for i in range(10)}, 3)
            family = GaugeMetricFamily("budgeted_value", "V.", labels=["key"])
            for key in sorted(kept):
                family.add_metric([key], 1.0)
            family.add_metric(["other"], 7.0)
            yield family

    engine = ScrapeEngine(units_of(Budgeted("b")))
    got = samples(run(engine.render(engine.units, Deadline.after(5), Format.TEXT, False)))
    assert (
        got[("afirgen_exporter_series_dropped", (("collector", "budgeted"), ("target", "b")))] == 7
    )
    assert {k for (n, k) in got if n == "budgeted_value"} == {
        (("key", "k9"),),
        (("key", "k8"),),
        (("key", "k7"),),
        (("key", "other"),),
    }
    engine.close()


def test_collect_is_the_plain_prometheus_client_api():
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(RaisingCollector("plain"))
    body = generate_latest(registry).decode()  # never raises out of collect()
    assert 'raising_up{target="plain"} 0.0' in body


def test_the_engine_serves_its_self_metrics_exactly_as_specified():
    declared = by_name(self_metrics.SPECS)
    config = load_config({"collectors": {"system": {"enabled": False}}}, env={})
    exporter = Exporter(config, extra_collectors=[CountingCollector(), RaisingCollector("r1")])
    engine = exporter.loaded.engine  # with the reload families the Exporter adds
    seen = set()
    for probe in (False, True):
        body = run(engine.render(engine.units, Deadline.after(5), Format.TEXT, False, probe=probe))
        for family in text_string_to_metric_families(body.decode()):
            exposed = family.name + "_total" if family.type == "counter" else family.name
            if exposed not in declared:
                assert not exposed.startswith(("afirgen_exporter_", "probe_")), exposed
                continue
            spec = declared[exposed]
            seen.add(exposed)
            assert family.type == spec.type.value and family.documentation == spec.help
            for sample in family.samples:
                assert set(sample.labels) == set(spec.labels)
    assert seen == set(declared)
    engine.close()


def test_a_subclass_named_the_0_1_way_is_refused_at_definition():
    """0.1 named a collector with `kind`: silently it would become "source" and merge."""
    with pytest.raises(TypeError, match="collector = "):

        class OldStyle(SourceCollector):
            kind = "legacy"

            def fetch(self, ctx: ScrapeContext) -> list[GaugeMetricFamily]:
                return []

    class NewStyle(SourceCollector):
        collector = "legacy"

        def fetch(self, ctx: ScrapeContext) -> list[GaugeMetricFamily]:
            return []

    assert NewStyle("t").collector == "legacy"
