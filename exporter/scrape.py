"""One scrape: the selected collectors run concurrently off the event loop within a deadline.

- Every collector runs in a worker thread; the event loop only waits, so a slow source never
  blocks other requests.
- A collector still running at the deadline is reported down (`reason="timeout"`) and its
  families are left out; the scrape answers on time with everything else.
- Single flight: a collector already being collected is not started again; later scrapes wait
  for the same result. A whole rendered body is shared the same way between identical scrapes
  that arrive together (same collectors, format and compression).
"""

from __future__ import annotations

import asyncio
import functools
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from collectors.base import CollectionResult, Deadline, SourceCollector
from exporter import __version__
from exporter.exposition import Format, compress, encode

UnitKey = tuple[str, str]


def merge_same_name(families: Sequence[Metric]) -> list[Metric]:
    """One family per metric name, as both exposition formats require.

    Several targets of one collector (two databases, two Redis) each yield their own family
    of the same name; their samples are joined under the first one's HELP and TYPE. The input
    is returned as is when every name is already unique (the common, cheap case).
    """
    if len({family.name for family in families}) == len(families):
        return list(families)
    merged: dict[str, Metric] = {}
    result: list[Metric] = []
    for family in families:
        existing = merged.get(family.name)
        if existing is None:
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = list(family.samples)
            merged[family.name] = copy
            result.append(copy)
        elif existing.type == family.type:
            existing.samples.extend(family.samples)
        else:  # a clash of types between collectors: keep the first, never emit both
            continue
    return result


@dataclass(frozen=True)
class Unit:
    """One configured thing to collect: a collector kind and the target it reads."""

    kind: str
    target: str
    collector: SourceCollector
    #: Served by /metrics (its collector is enabled). Every unit can be scraped through /probe.
    in_metrics: bool = True
    #: Its own time limit inside the scrape deadline, when configured.
    timeout_seconds: float | None = None

    @property
    def key(self) -> UnitKey:
        return (self.kind, self.target)


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
    gzip_level: int = 6
    #: Serve `_created` series (created timestamps in protobuf); `scrape.created_series`.
    created_series: bool = True
    #: Families added to every /metrics answer (reload status and the like); no I/O.
    extra_families: Callable[[], Iterable[Metric]] = no_families
    status: dict[UnitKey, UnitStatus] = field(default_factory=dict)

    def __post_init__(self) -> None:
        workers = min(64, max(4, len(self.units) + 2))
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="collect")
        self._encoder = ThreadPoolExecutor(2, thread_name_prefix="encode")
        self._collections: dict[UnitKey, asyncio.Future[CollectionResult]] = {}
        self._renders: dict[tuple[object, ...], _Render] = {}
        for unit in self.units:
            self.status[unit.key] = UnitStatus()
        self._build_info = GaugeMetricFamily(
            "afirgen_exporter_build_info",
            "Version of the exporter and of the Python running it.",
            labels=["version", "python_version"],
        )
        self._build_info.add_metric([__version__, platform.python_version()], 1.0)

    # -- collection ---------------------------------------------------------------------

    async def collect(
        self, units: Sequence[Unit], deadline: Deadline
    ) -> list[tuple[Unit, CollectionResult]]:
        results = await asyncio.gather(*(self._collect_one(u, deadline) for u in units))
        return list(zip(units, results, strict=True))

    async def _collect_one(self, unit: Unit, deadline: Deadline) -> CollectionResult:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        unit_deadline = deadline
        if unit.timeout_seconds is not None:
            unit_deadline = Deadline(min(deadline.at, started + unit.timeout_seconds))
        future = self._collections.get(unit.key)
        if future is None:
            future = loop.run_in_executor(self._executor, unit.collector.run, unit_deadline)
            self._collections[unit.key] = future
            future.add_done_callback(functools.partial(self._forget, unit.key))
        try:
            result = await asyncio.wait_for(asyncio.shield(future), unit_deadline.remaining())
        except TimeoutError:
            result = CollectionResult(
                families=list(unit.collector.down_families()),
                success=False,
                duration_seconds=time.monotonic() - started,
                reason="timeout",
            )
            unit.collector.log_failure("timeout", TimeoutError("scrape deadline reached"))
        self._record(unit, result)
        return result

    def _forget(self, key: UnitKey, future: asyncio.Future[CollectionResult]) -> None:
        if self._collections.get(key) is future:
            del self._collections[key]
        if not future.cancelled():
            future.exception()  # mark retrieved: run() never raises, but be quiet if it did

    def _record(self, unit: Unit, result: CollectionResult) -> None:
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
        labels = ["collector", "target"]
        success = GaugeMetricFamily(
            "afirgen_exporter_collector_success",
            "1 if the collector read its source in this scrape, 0 if it failed or timed out.",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            "afirgen_exporter_collector_duration_seconds",
            "Time the collector took in this scrape (up to the deadline).",
            labels=labels,
            unit="seconds",
        )
        dropped = GaugeMetricFamily(
            "afirgen_exporter_series_dropped",
            "Series folded into 'other' by a cardinality budget in this scrape.",
            labels=labels,
        )
        for unit, result in results:
            values = [unit.kind, unit.target]
            success.add_metric(values, 1.0 if result.success else 0.0)
            duration.add_metric(values, result.duration_seconds)
            dropped.add_metric(values, float(result.series_dropped))
        return [self._build_info, success, duration, dropped]

    def _with_namespace(self, families: list[Metric]) -> list[Metric]:
        if not self.namespace:
            return families
        prefix = self.namespace + "_"
        renamed = []
        for family in families:
            copy = Metric(prefix + family.name, family.documentation, family.type, family.unit)
            copy.samples = [s._replace(name=prefix + s.name) for s in family.samples]
            renamed.append(copy)
        return renamed

    async def metrics_families(self, units: Sequence[Unit], deadline: Deadline) -> list[Metric]:
        results = await self.collect(units, deadline)
        families: list[Metric] = []
        for _, result in results:
            families.extend(result.families)
        families.extend(self.self_families(results))
        families.extend(self.extra_families())
        return self._with_namespace(merge_same_name(families))

    async def probe_families(self, units: Sequence[Unit], deadline: Deadline) -> list[Metric]:
        started = time.monotonic()
        results = await self.collect(units, deadline)
        families: list[Metric] = []
        for _, result in results:
            families.extend(result.families)
        ok = all(result.success for _, result in results)
        families.append(
            GaugeMetricFamily(
                "probe_success",
                "1 if every collector of the probed target succeeded.",
                value=1.0 if ok else 0.0,
            )
        )
        families.append(
            GaugeMetricFamily(
                "probe_duration_seconds",
                "How long the probe took.",
                value=time.monotonic() - started,
            )
        )
        families.extend(self.self_families(results))
        return self._with_namespace(merge_same_name(families))

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
        that one's deadline is not later than its own.
        """
        key = (tuple(u.key for u in units), fmt, gzipped, probe)
        shared = self._renders.get(key)
        if shared is None or shared.deadline_at > deadline.at + 0.05:
            task = asyncio.ensure_future(self._render(units, deadline, fmt, gzipped, probe))
            shared = _Render(task, deadline.at)
            self._renders[key] = shared
            task.add_done_callback(functools.partial(self._forget_render, key))
        return await asyncio.shield(shared.future)

    async def _render(
        self, units: Sequence[Unit], deadline: Deadline, fmt: Format, gzipped: bool, probe: bool
    ) -> bytes:
        if probe:
            families = await self.probe_families(units, deadline)
        else:
            families = await self.metrics_families(units, deadline)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._encoder, self._encode, families, fmt, gzipped)

    def _forget_render(self, key: tuple[object, ...], future: asyncio.Future[bytes]) -> None:
        shared = self._renders.get(key)
        if shared is not None and shared.future is future:
            del self._renders[key]
        if not future.cancelled():
            future.exception()  # retrieved here; the awaiting scrapers see it too

    def _encode(self, families: list[Metric], fmt: Format, gzipped: bool) -> bytes:
        body = encode(families, fmt, created=self.created_series)
        return compress(body, self.gzip_level) if gzipped else body

    async def render_families_text(self, units: Sequence[Unit], deadline: Deadline) -> bytes:
        return self._encode(await self.metrics_families(units, deadline), Format.TEXT, False)

    # -- lifecycle ----------------------------------------------------------------------

    async def aclose(self, grace_seconds: float = 30.0) -> None:
        """Wait (bounded) for collections in flight, then close every collector's sources."""
        pending = list(self._collections.values())
        if pending:
            await asyncio.wait(pending, timeout=grace_seconds)
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        for unit in self.units:
            try:
                unit.collector.close()
            except Exception:  # noqa: BLE001 - closing must go on for the others
                unit.collector.log_failure("error", RuntimeError("close failed"))
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._encoder.shutdown(wait=False, cancel_futures=True)
