"""The host, through psutil: CPU, memory, load, disk and network I/O, filesystems.

CPU percent is computed from the CPU-time counters between this scrape and the previous one,
so a scrape never sleeps to sample (psutil's `cpu_percent(interval=...)` would block).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import psutil
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from collectors.base import ScrapeContext, SourceCollector
from collectors.checks import check_regex

_IDLE_MODES = ("idle", "iowait")


@dataclass(frozen=True)
class Options:
    #: At most this many filesystems are reported (the largest); the rest count as dropped.
    filesystem_limit: int = 32
    #: Mount points to leave out (pseudo and container filesystems by default).
    mountpoints_exclude: str = field(
        default=r"^/(dev|proc|sys|run|var/lib/docker/.+|var/lib/kubelet/.+)($|/)",
        metadata={"check": check_regex},
    )
    #: Network devices left out of the network totals (loopback traffic is not host traffic).
    network_devices_exclude: str = field(default=r"^lo$", metadata={"check": check_regex})


def build(options: Options | None, target: None = None) -> SystemCollector:
    return SystemCollector(options or Options())


class SystemCollector(SourceCollector):
    kind = "system"

    def __init__(self, options: Options, *, ps: ModuleType = psutil) -> None:
        super().__init__("system")
        self.options = options
        self.ps = ps
        self._mount_exclude = re.compile(options.mountpoints_exclude)
        self._net_exclude = re.compile(options.network_devices_exclude)
        self._lock = threading.Lock()
        self._previous_cpu: tuple[float, float] | None = None  # (busy, total) seconds

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        yield from self._cpu()
        yield from self._memory()
        yield from self._load()
        yield from self._disk_io()
        yield from self._network()
        yield from self._filesystems(ctx)

    def _cpu(self) -> Iterator[Metric]:
        times = self.ps.cpu_times()
        modes = times._asdict()
        seconds = CounterMetricFamily(
            "system_cpu_seconds",
            "CPU time spent in each mode, summed over all CPUs (psutil.cpu_times).",
            labels=["mode"],
        )
        for mode, value in modes.items():
            seconds.add_metric([mode], float(value))
        yield seconds
        # guest time is already included in user time on Linux: leave it out of the total
        total = sum(v for m, v in modes.items() if m not in ("guest", "guest_nice"))
        busy = total - sum(modes.get(m, 0.0) for m in _IDLE_MODES)
        with self._lock:
            previous = self._previous_cpu or (0.0, 0.0)
            self._previous_cpu = (busy, total)
        delta_total = total - previous[1]
        delta_busy = busy - previous[0]
        percent = 100.0 * delta_busy / delta_total if delta_total > 0 else 0.0
        yield GaugeMetricFamily(
            "system_cpu_percent",
            "Share of CPU time not idle since the previous scrape (since boot on the first).",
            value=min(100.0, max(0.0, percent)),
        )
        yield GaugeMetricFamily(
            "system_cpus", "Logical CPUs.", value=float(self.ps.cpu_count() or 0)
        )

    def _memory(self) -> Iterator[Metric]:
        memory = self.ps.virtual_memory()
        yield GaugeMetricFamily(
            "system_memory_percent",
            "Memory in use, percent of total (psutil: total - available).",
            value=float(memory.percent),
        )
        for name, help_text in (
            ("total", "Physical memory."),
            ("available", "Memory available to new processes without swapping."),
            ("used", "Memory in use (psutil's definition)."),
            ("free", "Memory not used at all."),
        ):
            yield GaugeMetricFamily(
                f"system_memory_{name}_bytes", help_text, value=float(getattr(memory, name))
            )
        swap = self.ps.swap_memory()
        yield GaugeMetricFamily("system_swap_total_bytes", "Swap space.", value=float(swap.total))
        yield GaugeMetricFamily("system_swap_used_bytes", "Swap in use.", value=float(swap.used))

    def _load(self) -> Iterator[Metric]:
        try:
            load = os.getloadavg()
        except OSError:
            return
        for period, value in zip(("1", "5", "15"), load, strict=True):
            yield GaugeMetricFamily(
                f"system_load{period}", f"Load average over {period} minute(s).", value=value
            )
        yield GaugeMetricFamily(
            "system_boot_time_seconds",
            "When the host booted (Unix time).",
            value=float(self.ps.boot_time()),
        )

    def _disk_io(self) -> Iterator[Metric]:
        disk = self.ps.disk_io_counters(perdisk=False)
        if disk is None:  # no disks visible (some containers)
            return
        for name, attr, help_text in (
            ("system_disk_io_read_bytes", "read_bytes", "Bytes read from whole disks."),
            ("system_disk_io_write_bytes", "write_bytes", "Bytes written to whole disks."),
            ("system_disk_io_reads", "read_count", "Reads completed by whole disks."),
            ("system_disk_io_writes", "write_count", "Writes completed by whole disks."),
        ):
            yield CounterMetricFamily(name, help_text, value=float(getattr(disk, attr)))

    def _network(self) -> Iterator[Metric]:
        totals: dict[str, float] = {}
        for device, counters in self.ps.net_io_counters(pernic=True).items():
            if self._net_exclude.search(device):
                continue
            for attr, value in counters._asdict().items():
                totals[attr] = totals.get(attr, 0.0) + float(value)
        for name, attr, help_text in (
            ("system_network_sent_bytes", "bytes_sent", "Bytes sent"),
            ("system_network_recv_bytes", "bytes_recv", "Bytes received"),
            ("system_network_sent_packets", "packets_sent", "Packets sent"),
            ("system_network_recv_packets", "packets_recv", "Packets received"),
            ("system_network_errors_in", "errin", "Receive errors"),
            ("system_network_errors_out", "errout", "Transmit errors"),
            ("system_network_drops_in", "dropin", "Incoming packets dropped"),
            ("system_network_drops_out", "dropout", "Outgoing packets dropped"),
        ):
            yield CounterMetricFamily(
                name,
                f"{help_text}, all network devices but the excluded ones (loopback).",
                value=totals.get(attr, 0.0),
            )

    def _filesystems(self, ctx: ScrapeContext) -> Iterator[Metric]:
        usage: dict[tuple[str, str, str], Any] = {}
        for part in self._partitions():
            if ctx.deadline.expired():
                break
            try:
                usage[(part.mountpoint, part.fstype, part.device)] = self.ps.disk_usage(
                    part.mountpoint
                )
            except OSError:
                continue  # unmounted between listing and statfs, or no permission
        kept = ctx.keep_top(
            {key: float(u.total) for key, u in usage.items()}, self.options.filesystem_limit
        )
        labels = ["mountpoint", "fstype", "device"]
        families = {
            "size": GaugeMetricFamily(
                "system_filesystem_size_bytes", "Filesystem size.", labels=labels
            ),
            "used": GaugeMetricFamily(
                "system_filesystem_used_bytes", "Filesystem space in use.", labels=labels
            ),
            "avail": GaugeMetricFamily(
                "system_filesystem_avail_bytes",
                "Filesystem space available to unprivileged users.",
                labels=labels,
            ),
        }
        for key in sorted(kept):
            u = usage[key]
            families["size"].add_metric(list(key), float(u.total))
            families["used"].add_metric(list(key), float(u.used))
            families["avail"].add_metric(list(key), float(u.free))
        yield from families.values()

    def _partitions(self) -> Iterable[Any]:
        seen: set[str] = set()
        for part in self.ps.disk_partitions(all=False):
            if part.mountpoint in seen or self._mount_exclude.search(part.mountpoint):
                continue
            seen.add(part.mountpoint)
            yield part
