"""The exporter's own process: prometheus_client's process families, GC and platform collectors.

Kept apart from `system` so that turning the host collector off (where node_exporter runs)
still leaves the exporter's own CPU and memory visible.

The `process_*` families are prometheus_client's ProcessCollector's (same names, help, types
and values), read more cheaply, since every scrape pays them: `/proc/PID/stat` and the `fd`
listing as before, the open-files limit from getrlimit (prlimit for another pid) instead of
parsing `/proc/PID/limits`, and the families copied from ones built once instead of
validated anew.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.samples import Sample

from collectors.base import ScrapeContext, SourceCollector

_PROCESS_FAMILIES = (
    ("process_virtual_memory_bytes", "Virtual memory size in bytes.", False),
    ("process_resident_memory_bytes", "Resident memory size in bytes.", False),
    ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", False),
    ("process_cpu_seconds", "Total user and system CPU time spent in seconds.", True),
    ("process_open_fds", "Number of open file descriptors.", False),
    ("process_max_fds", "Maximum number of open file descriptors.", False),
)


def build(options: None = None, target: None = None) -> ExporterProcessCollector:
    return ExporterProcessCollector()


class ProcessFamilies:
    """What prometheus_client's ProcessCollector yields for `pid`, in its order; a part it
    cannot read (no /proc, a process gone) is left out, as there."""

    def __init__(self, pid: str = "self") -> None:
        self._pid = pid
        self._dir = f"/proc/{pid}"
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
        family.samples = [tuple.__new__(Sample, (name, {}, value, None, None, None))]
        return family

    def collect(self) -> list[Metric]:
        if not self._btime:
            return []
        result = []
        try:
            with open(f"{self._dir}/stat", "rb") as stat:
                parts = stat.read().split(b")")[-1].split()
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


class ExporterProcessCollector(SourceCollector):
    collector = "process"

    def __init__(self, pid: str = "self") -> None:
        super().__init__("process")
        self._parts = (
            ProcessFamilies(pid),
            GCCollector(registry=CollectorRegistry(auto_describe=False)),
            PlatformCollector(registry=None),
        )

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()
