"""The exporter's own process: prometheus_client's process families, GC and platform collectors.

Kept apart from `system` so that turning the host collector off (where node_exporter runs)
still leaves the exporter's own CPU and memory visible.

The `process_*` families are prometheus_client's ProcessCollector's (same names, help, types
and values), read more cheaply, since every scrape pays them: `/proc/PID/stat` through a
descriptor kept open (`procfs.KeptFile`), the `fd` listing as before, the open-files limit
from getrlimit (prlimit for another pid) instead of parsing `/proc/PID/limits`, and the
families copied from ones built once instead of validated anew. The `python_gc_*` families
are GCCollector's, built the same way from `gc.get_stats()`.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.samples import Sample

from collectors.base import ScrapeContext, SourceCollector
from collectors.procfs import KeptFile

_PROCESS_FAMILIES = (
    ("process_virtual_memory_bytes", "Virtual memory size in bytes.", False),
    ("process_resident_memory_bytes", "Resident memory size in bytes.", False),
    ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", False),
    ("process_cpu_seconds", "Total user and system CPU time spent in seconds.", True),
    ("process_open_fds", "Number of open file descriptors.", False),
    ("process_max_fds", "Maximum number of open file descriptors.", False),
)
#: GCCollector's families: (name, help, the gc.get_stats() key)
_GC_FAMILIES = (
    ("python_gc_objects_collected", "Objects collected during gc", "collected"),
    ("python_gc_objects_uncollectable", "Uncollectable objects found during GC", "uncollectable"),
    ("python_gc_collections", "Number of times this generation was collected", "collections"),
)
_new_sample = tuple.__new__


def build(options: None = None, target: None = None) -> ExporterProcessCollector:
    return ExporterProcessCollector()


class ProcessFamilies:
    """What prometheus_client's ProcessCollector yields for `pid`, in its order; a part it
    cannot read (no /proc, a process gone) is left out, as there."""

    def __init__(self, pid: str = "self") -> None:
        self._pid = pid
        self._dir = f"/proc/{pid}"
        self._stat = KeptFile(f"{self._dir}/stat")
        self._ticks = float(os.sysconf("SC_CLK_TCK"))
        self._pagesize = resource.getpagesize()
        self._btime = 0.0
        try:
            with open("/proc/stat", "rb") as stat:
                for line in stat:
                    if line.startswith(b"btime "):
                        self._btime = float(line.split()[1])
                        break
        except OSError:
            pass
        self._prototypes: list[Metric] = [
            (CounterMetricFamily if counter else GaugeMetricFamily)(name, help, labels=[])
            for name, help, counter in _PROCESS_FAMILIES
        ]

    def _family(self, index: int, value: float) -> Metric:
        prototype = self._prototypes[index]
        family: Metric = Metric.__new__(type(prototype))
        family.__dict__.update(prototype.__dict__)
        name = prototype.name + "_total" if index == 3 else prototype.name
        family.samples = [_new_sample(Sample, (name, {}, value, None, None, None))]
        return family

    def close(self) -> None:
        self._stat.close()

    def collect(self) -> list[Metric]:
        if not self._btime:
            return []
        result = []
        try:
            parts = self._stat.read().split(b")")[-1].split()
            result.append(self._family(0, float(parts[20])))
            result.append(self._family(1, float(parts[21]) * self._pagesize))
            result.append(self._family(2, float(parts[19]) / self._ticks + self._btime))
            result.append(self._family(3, (float(parts[11]) + float(parts[12])) / self._ticks))
        except OSError:
            pass
        try:
            open_fds = float(len(os.listdir(f"{self._dir}/fd")))
            max_fds = self._max_fds()
            result.append(self._family(4, open_fds))
            result.append(self._family(5, max_fds))
        except OSError:
            pass
        return result

    def _max_fds(self) -> float:
        """The soft open-files limit, as the `Max open files` row of /proc/PID/limits."""
        if self._pid == "self":
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        else:
            soft, _ = resource.prlimit(int(self._pid), resource.RLIMIT_NOFILE)
        return float("inf") if soft == resource.RLIM_INFINITY else float(soft)


class GCFamilies:
    """What prometheus_client's GCCollector yields (nothing off CPython, as there), from
    families built once: three counters with a sample per generation, the counts as ints."""

    def __init__(self) -> None:
        self._enabled = hasattr(gc, "get_stats") and platform.python_implementation() == "CPython"
        self._prototypes = [
            (CounterMetricFamily(name, help, labels=["generation"]), key)
            for name, help, key in _GC_FAMILIES
        ]

    def collect(self) -> list[Metric]:
        if not self._enabled:
            return []
        stats = gc.get_stats()
        result = []
        for prototype, key in self._prototypes:
            family: Metric = Metric.__new__(CounterMetricFamily)
            family.__dict__.update(prototype.__dict__)
            name = prototype.name + "_total"
            family.samples = [
                _new_sample(Sample, (name, {"generation": str(gen)}, stat[key], None, None, None))
                for gen, stat in enumerate(stats)
            ]
            result.append(family)
        return result


class ExporterProcessCollector(SourceCollector):
    collector = "process"

    def __init__(self, pid: str = "self") -> None:
        super().__init__("process")
        self._process = ProcessFamilies(pid)
        self._parts = (self._process, GCFamilies(), PlatformCollector(registry=None))

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()

    def close(self) -> None:
        self._process.close()
