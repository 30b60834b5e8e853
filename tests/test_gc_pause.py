"""exporter/gc_pause.py: the cyclic collector is off during scrapes, on after, and a pause
that never ends still lets collections run."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from collectors.base import Deadline, ScrapeContext, SourceCollector
from exporter.exposition import Format
from exporter.gc_pause import GCPause
from exporter.scrape import ScrapeEngine, Unit


class GCWatchingCollector(SourceCollector):
    """Records whether the cyclic collector was on while it was being collected."""

    collector = "gcwatch"

    def __init__(self, name: str = "g") -> None:
        super().__init__(name)
        self.seen: list[bool] = []

    def fetch(self, ctx: ScrapeContext):
        self.seen.append(gc.isenabled())
        time.sleep(0.05)
        yield GaugeMetricFamily("gcwatch_value", "A value.", value=1.0)


def test_the_collector_is_paused_during_scrapes_and_resumed_after_the_last():
    watching = GCWatchingCollector()
    engine = ScrapeEngine([Unit("gcwatch", "g", watching)])

    async def overlapping():
        first = asyncio.ensure_future(
            engine.render(engine.units, Deadline.after(5), Format.TEXT, False)
        )
        await asyncio.sleep(0.01)
        second = engine.render(engine.units, Deadline.after(5), Format.PROTOBUF, False)
        return await asyncio.gather(first, second)

    assert gc.isenabled()
    try:
        bodies = asyncio.run(overlapping())
        assert b"gcwatch_value 1.0" in bodies[0]
        assert watching.seen and not any(watching.seen)
        assert gc.isenabled()  # on again once both scrapes are done
    finally:
        gc.enable()
        engine.close()


def test_a_process_that_turned_the_collector_off_keeps_it_off():
    pause = GCPause()
    gc.disable()
    try:
        with pause, pause:
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pause:
        with pause:
            assert not gc.isenabled()
        assert not gc.isenabled()  # an outer scrape still runs
    assert gc.isenabled()


def test_scrapes_overlapping_without_a_gap_still_let_a_collection_run():
    """A pause that never ends (overlapping scrapes) must not stop cycles being collected."""
    pause = GCPause(max_seconds=0.05)
    collections: list[int] = []

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collections.append(info["generation"])

    gc.callbacks.append(counted)
    try:
        with pause:
            with pause:
                pass
            assert collections == []  # within max_seconds: no collection
            time.sleep(0.06)
            with pause:
                assert collections == [2]  # overdue: a full collection as this one started
            assert collections == [2]  # and the clock starts again: none as it ended
            time.sleep(0.06)
            with pause:
                pass
            assert collections == [2, 2]  # overdue again, the outer scrape still running
            assert not gc.isenabled()
    finally:
        gc.callbacks.remove(counted)
    assert gc.isenabled()


class WeakFamilies(SourceCollector):
    """Quick collector whose families are watched through weak references."""

    collector = "weak"

    def __init__(self, name: str, refs: list[weakref.ref[Metric]]) -> None:
        super().__init__(name)
        self.refs = refs

    def fetch(self, ctx: ScrapeContext):
        family = GaugeMetricFamily("weak_value", "A value.", labels=["n"])
        family.add_metric([self.name], 1.0)
        self.refs.append(weakref.ref(family))
        yield family


def test_a_scrapes_families_are_freed_without_the_cyclic_collector():
    """Nothing of a scrape waits for the cyclic collector: a cycle through a run's future held
    every family until the collector's next pass, which then walked them all."""
    refs: list[weakref.ref[Metric]] = []
    units = [Unit("weak", f"w{i}", WeakFamilies(f"w{i}", refs)) for i in range(5)]
    engine = ScrapeEngine(units)

    async def scrapes() -> None:
        for _ in range(3):  # the later ones run chained: every path of the engine
            await engine.render(units, Deadline.after(5), Format.TEXT, True)

    try:
        asyncio.run(scrapes())
        gc.collect()
        refs.clear()
        gc.disable()
        asyncio.run(scrapes())
        alive = sum(ref() is not None for ref in refs)
        gc.collect()
        assert sum(ref() is not None for ref in refs) == alive  # none was garbage in a cycle
        assert alive <= 1  # (a worker thread may hold its last result until its next job)
    finally:
        gc.enable()
        engine.close()
