"""One scrape: the selected collectors run concurrently off the event loop within a deadline.

- Every collector runs in a worker thread; the event loop only waits, so a slow source never
  blocks other requests. The slowest starts first in a thread of its own; quick ones share
  two threads (exporter.runs), in the configured order.
- A collector still running at the deadline is reported down (`reason="timeout"`) and its
  families are left out; the scrape answers on time with everything else. That run is
  abandoned (exporter.runs): the next scrape starts afresh instead of waiting for it.
- Each unit's families are encoded as soon as it is collected, while slower sources are still
  waited for (exporter.bodies).
- Single flight: a collector already being collected is not started again; later scrapes wait
  for the same result. A whole rendered body is shared the same way between identical scrapes
  that arrive together (same collectors, format and compression).
- Closing (reload, shutdown) lets the scrapes in flight finish first, and is bounded in time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import platform
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from collectors.base import CollectionResult, Deadline, SourceCollector
from exporter import __version__
from exporter.bodies import Bodies, samples
from exporter.exposition import Encoding, Format
from exporter.families import merge_same_name
from exporter.gc_pause import SCRAPE_GC_PAUSE
from exporter.runs import (
    MAX_ABANDONED,
    SAME_DEADLINE_SECONDS,
    SPARE_AFTER_SECONDS,
    Flights,
)
from exporter.self_metrics import (
    BUILD_INFO,
    PROBE_DURATION,
    PROBE_SUCCESS,
    unit_families,
)
from exporter.workers import WorkerPool, daemon_call

log = logging.getLogger("afirgen_exporter")

#: Seconds every collector's close() is given before the engine goes on without it.
CLOSE_SECONDS = 1.0
#: Collection threads of one engine at most.
MAX_THREADS = 128
#: Bodies of at most this many samples are encoded on the event loop (about 1 ms of CPU):
#: handing them to the encoding thread and back costs more than that blocks other requests.
INLINE_ENCODE_SAMPLES = 1000

#: Units that took at most this long last time (and answered) may run one after another in
#: one thread; slower ones, and those that failed, get a thread each.
CHAIN_SECONDS = 0.05
#: A chained unit gets a thread of its own once the chain took this many times its usual
#: duration without reaching it (exporter.runs).
SPARE_FACTOR = 2.0
#: The unit started first changes when another takes this many times as long.
LEAD_MARGIN = 1.5
#: Selections of units (/metrics, /probe targets, collect[] subsets) whose lead is kept.
MAX_SELECTIONS = 64

UnitKey = tuple[str, str]


@dataclass(frozen=True)
class Unit:
    """One configured thing to collect: a collector (by name) and the target it reads."""

    collector_name: str
    target: str
    collector: SourceCollector
    #: Served by /metrics (its collector is enabled). Every unit can be scraped through /probe.
    in_metrics: bool = True
    #: Its own time limit inside the scrape deadline, when configured.
    timeout_seconds: float | None = None
    #: What it was built from (collector options, target entry): a reload that leaves them
    #: equal keeps the unit's status. None: not built from the config.
    settings: object = field(default=None, compare=False)

    @property
    def key(self) -> UnitKey:
        return (self.collector_name, self.target)


@dataclass
class UnitStatus:
    """What the landing page shows of a unit: its last scrape and why it failed."""

    last_scrape: float | None = None
    last_success: float | None = None
    duration_seconds: float | None = None
    success: bool | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()


def no_families() -> Iterable[Metric]:
    return ()


@dataclass
class _Render:
    future: asyncio.Future[bytes]
    deadline_at: float


@dataclass
class ScrapeEngine:
    units: Sequence[Unit]
    namespace: str = ""
    gzip_level: int = 1
    #: Serve `_created` series (created timestamps in protobuf); `scrape.created_series`.
    created_series: bool = True
    #: Families added to every /metrics answer (reload status and the like); no I/O.
    extra_families: Callable[[], Iterable[Metric]] = no_families
    status: dict[UnitKey, UnitStatus] = field(default_factory=dict)
    #: Abandoned runs per unit; a reload hands the old engine's counts to the new one.
    abandoned_total: dict[UnitKey, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # every unit may have its run and MAX_ABANDONED stuck ones: no scrape queues behind
        # them (threads start on demand; past MAX_THREADS, collections queue)
        workers = min(MAX_THREADS, max(4, len(self.units) * (MAX_ABANDONED + 1) + 2))
        self._executor = WorkerPool(workers, "collect")
        self._encoder = WorkerPool(2, "encode")
        self._janitor = WorkerPool(1, "abandon")
        self._flights: Flights[UnitKey] = Flights(
            self._executor, self._janitor, abandoned_total=self.abandoned_total
        )
        self._renders: dict[tuple[object, ...], _Render] = {}
        #: the unit started first, per selection of units (see `_lead`)
        self._leads: dict[tuple[UnitKey, ...], int] = {}
        self._active: set[asyncio.Future[bytes]] = set()
        self._closed = False
        self._bodies = Bodies(self.namespace, self.created_series, self.gzip_level)
        for unit in self.units:
            self.status[unit.key] = UnitStatus()
        self._build_info = BUILD_INFO.single(1.0, __version__, platform.python_version())

    def carry_over(self, old: ScrapeEngine) -> None:
        """Take over from the engine a reload replaces: every unit built from the same settings
        (or from the same collector) keeps its status, which scrapes still in flight on the old
        engine go on updating, and its logged state (a target still down is not announced
        again). No I/O."""
        before = {unit.key: unit for unit in old.units}
        for unit in self.units:
            previous = before.get(unit.key)
            if previous is None or unit.key not in old.status:
                continue
            same = previous.collector is unit.collector or (
                unit.settings is not None and previous.settings == unit.settings
            )
            if same:
                self.status[unit.key] = old.status[unit.key]
                unit.collector.carry_state(previous.collector)

    # -- collection ---------------------------------------------------------------------

    async def collect(
        self,
        units: Sequence[Unit],
        deadline: Deadline,
        *,
        on_result: Callable[[concurrent.futures.Future[CollectionResult]], None] | None = None,
    ) -> list[tuple[Unit, CollectionResult]]:
        """Each unit's result (down families for those that did not answer in time).
        `on_result`: see exporter.runs.Flights.results."""
        started = time.monotonic()
        deadlines = [
            deadline
            if unit.timeout_seconds is None
            else Deadline(min(deadline.at, started + unit.timeout_seconds))
            for unit in units
        ]
        # the longest collection (by its last duration) is started first, in a thread of its
        # own: starting the slow source last would add the others' CPU to the scrape's wall
        # time. Quick ones that answered last time run one after another in one thread
        # (exporter.runs), in the order configured: a stable order, so what one unit sees of
        # another's traffic stays put.
        lead = self._lead(units)
        order = [lead, *(i for i in range(len(units)) if i != lead)] if units else []
        chained = [n for n, i in enumerate(order) if n > 0 and self._chainable(units[i])]
        spare_after = max(
            SPARE_AFTER_SECONDS,
            SPARE_FACTOR * sum(self._last_duration(units[order[n]]) for n in chained),
        )
        started_answers = await self._flights.results(
            [(units[i].key, units[i].collector, deadlines[i]) for i in order],
            chained=chained if len(chained) > 1 else (),
            spare_after=min(spare_after, deadline.remaining() / 4),
            on_result=on_result,
        )
        answers: list[CollectionResult | None] = [None] * len(units)
        for i, answer in zip(order, started_answers, strict=True):
            answers[i] = answer
        results = []
        for unit, unit_deadline, result in zip(units, deadlines, answers, strict=True):
            if result is None:
                result = self._timed_out(unit, min(unit_deadline.at, time.monotonic()) - started)
                if self._flights.stopped:  # cut short by the stop, not the target's fault
                    results.append((unit, result))
                    continue
            self._record(unit, result)
            results.append((unit, result))
        return results

    def _lead(self, units: Sequence[Unit]) -> int:
        """Index of the unit to start first: the slowest by its last duration, kept until
        another one takes LEAD_MARGIN times as long (durations jitter; the order should not)."""
        if not units:
            return 0
        selection = tuple(unit.key for unit in units)
        slowest = max(range(len(units)), key=lambda i: self._last_duration(units[i]))
        kept = self._leads.get(selection)
        if kept is not None and kept != slowest:
            if self._last_duration(units[slowest]) <= LEAD_MARGIN * self._last_duration(
                units[kept]
            ):
                return kept
        if len(self._leads) >= MAX_SELECTIONS:
            self._leads.clear()
        self._leads[selection] = slowest
        return slowest

    def _chainable(self, unit: Unit) -> bool:
        """It answered last time, quickly: it may wait in a chain (exporter.runs)."""
        status = self.status.get(unit.key)
        return (
            status is not None
            and status.success is True
            and (status.duration_seconds or 0.0) <= CHAIN_SECONDS
        )

    def _last_duration(self, unit: Unit) -> float:
        status = self.status.get(unit.key)
        return (status.duration_seconds or 0.0) if status is not None else 0.0

    def stop_scrapes(self) -> None:
        """The process is stopping: scrapes in flight answer now with what is collected (the
        rest reported down, `timeout`, neither logged nor recorded as the target's state) and
        later ones at once, so no request outlives the server's graceful shutdown."""
        self._flights.stop_waiting()

    def _timed_out(self, unit: Unit, waited: float) -> CollectionResult:
        stuck = self._flights.stuck(unit.key)
        notes: tuple[str, ...] = ()
        detail = "no answer within the scrape deadline"
        if self._flights.stopped:
            detail = "not collected: the exporter is stopping"
        elif stuck >= MAX_ABANDONED:
            detail = f"{stuck} earlier collections still running past their deadline"
            notes = (f"{detail}: none started until one ends",)
        return CollectionResult(
            families=list(unit.collector.down_families()),
            success=False,
            duration_seconds=waited,
            reason="timeout",
            notes=notes,
            detail=detail,
        )

    def _record(self, unit: Unit, result: CollectionResult) -> None:
        unit.collector.report(result)
        status = self.status.setdefault(unit.key, UnitStatus())
        now = time.time()
        status.last_scrape = now
        status.duration_seconds = result.duration_seconds
        status.success = result.success
        status.reason = result.reason
        status.notes = result.notes
        if result.success:
            status.last_success = now

    # -- families -----------------------------------------------------------------------

    def self_families(self, results: Sequence[tuple[Unit, CollectionResult]]) -> list[Metric]:
        rows = [
            (unit.key, result, self.abandoned_total.get(unit.key, 0), self._flights.stuck(unit.key))
            for unit, result in results
        ]
        return [self._build_info, *unit_families(rows)]

    async def metrics_families(self, units: Sequence[Unit], deadline: Deadline) -> list[Metric]:
        results = await self.collect(units, deadline)
        families: list[Metric] = []
        for _, result in results:
            families.extend(result.families)
        families.extend(self.self_families(results))
        families.extend(self.extra_families())
        return self._bodies.named(merge_same_name(families))

    async def probe_families(self, units: Sequence[Unit], deadline: Deadline) -> list[Metric]:
        started = time.monotonic()
        results = await self.collect(units, deadline)
        families: list[Metric] = []
        for _, result in results:
            families.extend(result.families)
        ok = all(result.success for _, result in results)
        families.append(PROBE_SUCCESS.single(1.0 if ok else 0.0))
        families.append(PROBE_DURATION.single(time.monotonic() - started))
        families.extend(self.self_families(results))
        return self._bodies.named(merge_same_name(families))

    # -- rendering ----------------------------------------------------------------------

    async def render(
        self,
        units: Sequence[Unit],
        deadline: Deadline,
        fmt: Format,
        gzipped: bool,
        *,
        probe: bool = False,
    ) -> bytes:
        """The encoded body; identical scrapes in flight at once share one rendering.

        The rendering runs as its own task, so a scraper that goes away (and is cancelled)
        does not take the shared result from the others. A scraper joins a rendering only if
        that one's deadline is (nearly) its own: an earlier one would cut its collection short,
        a later one would answer after its deadline.
        """
        key = (tuple(u.key for u in units), fmt, gzipped, probe)
        shared = self._renders.get(key)
        if shared is None or abs(shared.deadline_at - deadline.at) > SAME_DEADLINE_SECONDS:
            task = self._track(self._render(units, deadline, fmt, gzipped, probe))
            shared = _Render(task, deadline.at)
            self._renders[key] = shared
            task.add_done_callback(functools.partial(self._forget_render, key))
        return await asyncio.shield(shared.future)

    def _track(self, coroutine: Coroutine[object, object, bytes]) -> asyncio.Future[bytes]:
        """A rendering as a task that closing waits for (a reload lets it finish)."""
        if self._closed:
            coroutine.close()
            raise RuntimeError("this scrape engine is closed")
        task = asyncio.ensure_future(coroutine)
        self._active.add(task)
        task.add_done_callback(self._active.discard)
        return task

    async def _render(
        self, units: Sequence[Unit], deadline: Deadline, fmt: Format, gzipped: bool, probe: bool
    ) -> bytes:
        with SCRAPE_GC_PAUSE:  # (exporter.gc_pause)
            loop = asyncio.get_running_loop()
            if not probe and len(units) > 1 and fmt.encoding is not Encoding.PROTOBUF:
                early = functools.partial(self._bodies.encode_early, fmt)
                pairs = await self.collect(units, deadline, on_result=early)
                tail = [*self.self_families(pairs), *self.extra_families()]
                results = [result for _, result in pairs]
                if sum(samples(r.families) for r in results) <= INLINE_ENCODE_SAMPLES:
                    return self._bodies.joined(results, tail, fmt, gzipped)
                return await loop.run_in_executor(
                    self._encoder, self._bodies.joined, results, tail, fmt, gzipped
                )
            if probe:
                families = await self.probe_families(units, deadline)
            else:
                families = await self.metrics_families(units, deadline)
            if samples(families) <= INLINE_ENCODE_SAMPLES:
                return self._bodies.whole(families, fmt, gzipped)  # cheaper than a thread hop
            return await loop.run_in_executor(
                self._encoder, self._bodies.whole, families, fmt, gzipped
            )

    def _forget_render(self, key: tuple[object, ...], future: asyncio.Future[bytes]) -> None:
        shared = self._renders.get(key)
        if shared is not None and shared.future is future:
            del self._renders[key]
        if not future.cancelled():
            future.exception()  # retrieved here; the awaiting scrapers see it too

    async def render_families_text(self, units: Sequence[Unit], deadline: Deadline) -> bytes:
        async def text() -> bytes:
            families = await self.metrics_families(units, deadline)
            return self._bodies.whole(families, Format.TEXT, False)

        return await self._track(text())

    # -- lifecycle ----------------------------------------------------------------------

    async def aclose(self, grace_seconds: float = 30.0) -> None:
        """Let the scrapes in flight finish (at most `grace_seconds`), then close the sources.

        Scrapes that started on this engine are answered by it even after a reload swapped it
        out; closing is bounded whatever a stuck source does.
        """
        until = Deadline.after(grace_seconds)
        while not until.expired():
            active: set[asyncio.Future[Any]] = set(self._active)
            active.update(map(asyncio.wrap_future, self._flights.in_flight()))
            if not active:
                break
            await asyncio.wait(active, timeout=until.remaining())
        await asyncio.wrap_future(daemon_call(self.close, "close"))

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Close every collector's sources, each in its own thread, within about `timeout`.

        A close still blocked after that (on a lock a stuck fetch holds, say) is left behind
        in its daemon thread and logged; it ends with the process.
        """
        self._closed = True
        closing = {
            daemon_call(unit.collector.close, f"close-{unit.collector_name}"): unit
            for unit in self.units
            if type(unit.collector).close is not SourceCollector.close  # nothing to close
        }
        done, late = concurrent.futures.wait(closing, timeout=timeout)
        for future in done:
            exc = future.exception()
            if exc is not None:
                closing[future].collector.log_failure(closing[future].collector.classify(exc), exc)
        for future in late:
            unit = closing[future]
            log.warning(
                "close did not finish within %.1f s collector=%s target=%s: left behind",
                timeout,
                unit.collector_name,
                unit.target,
            )
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._encoder.shutdown(wait=False, cancel_futures=True)
        self._janitor.shutdown(wait=False, cancel_futures=True)
