"""The host, through psutil and /proc: CPU, memory, load, disk and network I/O, filesystems.

CPU percent is computed from the CPU-time counters between this scrape and the previous one,
so a scrape never sleeps to sample (psutil's `cpu_percent(interval=...)` would block).
When the collector reads the real host, CPU, memory, swap, disk and network counters are read
from /proc by `collectors.procfs` (files kept open, only the fields served, psutil's
definitions), filesystems by `os.statvfs` (psutil.disk_usage's arithmetic) over a mount list
read again only when the kernel signals a change; an injected `ps` module is asked for
everything, the general path that tests/test_system_procfs.py holds the fast one to.

Every scrape builds some 45 families, most of one sample: they are copied from families built
once per spec and their samples made directly (`_Shape`), as `MetricSpec.single` would make
them but without its checks and copies.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

import psutil
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.samples import Sample

from collectors import procfs
from collectors.base import ScrapeContext, SourceCollector
from collectors.checks import check_limit, check_regex
from collectors.specs import MetricSpec, counter, gauge

_IDLE_MODES = ("idle", "iowait")
_FS_LABELS = ("mountpoint", "fstype", "device")
_ALL_BUT_EXCLUDED = "all network devices but the excluded ones (loopback)"
#: How often the CPU count and boot time (a hot-plug, a reboot) are read again.
HOST_SECONDS = 300.0
#: How often the mount table is read again where its changes are not signalled (an injected
#: `ps`, an /etc/mtab that is a file of its own): a new filesystem shows up within this.
MOUNTS_SECONDS = 60.0

# fmt: off
CPU_SECONDS = counter("system_cpu_seconds_total", "CPU time spent in each mode, summed over all CPUs.", ["mode"], unit="seconds", source="psutil.cpu_times()")  # noqa: E501
CPU_PERCENT = gauge("system_cpu_percent", "Share of CPU time not idle since the previous scrape (since boot on the first).", source="psutil.cpu_times() deltas")  # noqa: E501
CPUS = gauge("system_cpus", "Logical CPUs.", source="psutil.cpu_count()")
MEMORY_PERCENT = gauge("system_memory_percent", "Memory in use, percent of total (total - available).", source="psutil.virtual_memory().percent")  # noqa: E501
#: psutil.virtual_memory() attribute -> spec
MEMORY: tuple[tuple[str, MetricSpec], ...] = (
    ("total", gauge("system_memory_total_bytes", "Physical memory.", unit="bytes", source="psutil.virtual_memory().total")),  # noqa: E501
    ("available", gauge("system_memory_available_bytes", "Memory available to new processes without swapping.", unit="bytes", source="psutil.virtual_memory().available")),  # noqa: E501
    ("used", gauge("system_memory_used_bytes", "Memory in use (psutil's definition).", unit="bytes", source="psutil.virtual_memory().used")),  # noqa: E501
    ("free", gauge("system_memory_free_bytes", "Memory not used at all.", unit="bytes", source="psutil.virtual_memory().free")),  # noqa: E501
)
SWAP_TOTAL = gauge("system_swap_total_bytes", "Swap space.", unit="bytes", source="psutil.swap_memory().total")  # noqa: E501
SWAP_USED = gauge("system_swap_used_bytes", "Swap in use.", unit="bytes", source="psutil.swap_memory().used")  # noqa: E501
LOAD = tuple(gauge(f"system_load{p}", f"Load average over {p} minute(s).", source="os.getloadavg()") for p in ("1", "5", "15"))  # noqa: E501
BOOT_TIME = gauge("system_boot_time_seconds", "When the host booted (Unix time).", unit="seconds", source="psutil.boot_time()")  # noqa: E501
#: psutil.disk_io_counters() attribute -> spec
DISK_IO: tuple[tuple[str, MetricSpec], ...] = (
    ("read_bytes", counter("system_disk_io_read_bytes_total", "Bytes read from whole disks.", unit="bytes", source="psutil.disk_io_counters().read_bytes")),  # noqa: E501
    ("write_bytes", counter("system_disk_io_write_bytes_total", "Bytes written to whole disks.", unit="bytes", source="psutil.disk_io_counters().write_bytes")),  # noqa: E501
    ("read_count", counter("system_disk_io_reads_total", "Reads completed by whole disks.", source="psutil.disk_io_counters().read_count")),  # noqa: E501
    ("write_count", counter("system_disk_io_writes_total", "Writes completed by whole disks.", source="psutil.disk_io_counters().write_count")),  # noqa: E501
)
#: psutil.net_io_counters() attribute -> spec, summed over the devices not excluded
NETWORK: tuple[tuple[str, MetricSpec], ...] = (
    ("bytes_sent", counter("system_network_sent_bytes_total", f"Bytes sent, {_ALL_BUT_EXCLUDED}.", unit="bytes", source="psutil.net_io_counters().bytes_sent")),  # noqa: E501
    ("bytes_recv", counter("system_network_recv_bytes_total", f"Bytes received, {_ALL_BUT_EXCLUDED}.", unit="bytes", source="psutil.net_io_counters().bytes_recv")),  # noqa: E501
    ("packets_sent", counter("system_network_sent_packets_total", f"Packets sent, {_ALL_BUT_EXCLUDED}.", source="psutil.net_io_counters().packets_sent")),  # noqa: E501
    ("packets_recv", counter("system_network_recv_packets_total", f"Packets received, {_ALL_BUT_EXCLUDED}.", source="psutil.net_io_counters().packets_recv")),  # noqa: E501
    ("errin", counter("system_network_errors_in_total", f"Receive errors, {_ALL_BUT_EXCLUDED}.", source="psutil.net_io_counters().errin")),  # noqa: E501
    ("errout", counter("system_network_errors_out_total", f"Transmit errors, {_ALL_BUT_EXCLUDED}.", source="psutil.net_io_counters().errout")),  # noqa: E501
    ("dropin", counter("system_network_drops_in_total", f"Incoming packets dropped, {_ALL_BUT_EXCLUDED}.", source="psutil.net_io_counters().dropin")),  # noqa: E501
    ("dropout", counter("system_network_drops_out_total", f"Outgoing packets dropped, {_ALL_BUT_EXCLUDED}.", source="psutil.net_io_counters().dropout")),  # noqa: E501
)
#: psutil.disk_usage() attribute -> spec, per filesystem within `filesystem_limit`
FILESYSTEM: tuple[tuple[str, MetricSpec], ...] = (
    ("total", gauge("system_filesystem_size_bytes", "Filesystem size.", _FS_LABELS, unit="bytes", source="psutil.disk_usage().total")),  # noqa: E501
    ("used", gauge("system_filesystem_used_bytes", "Filesystem space in use.", _FS_LABELS, unit="bytes", source="psutil.disk_usage().used")),  # noqa: E501
    ("free", gauge("system_filesystem_avail_bytes", "Filesystem space available to unprivileged users.", _FS_LABELS, unit="bytes", source="psutil.disk_usage().free")),  # noqa: E501
)
# fmt: on

#: /proc/net/dev's columns of NETWORK's counters, in its order
_NET_COLUMNS = tuple(procfs.NET_COLUMNS[attr] for attr, _ in NETWORK)

SPECS: tuple[MetricSpec, ...] = (
    CPU_SECONDS,
    CPU_PERCENT,
    CPUS,
    MEMORY_PERCENT,
    *(spec for _, spec in MEMORY),
    SWAP_TOTAL,
    SWAP_USED,
    *LOAD,
    BOOT_TIME,
    *(spec for _, spec in DISK_IO),
    *(spec for _, spec in NETWORK),
    *(spec for _, spec in FILESYSTEM),
)


@dataclass(frozen=True)
class Options:
    #: At most this many filesystems are reported (the largest); the rest count as dropped.
    filesystem_limit: int = field(default=32, metadata={"check": check_limit})
    #: Mount points to leave out (pseudo and container filesystems by default).
    mountpoints_exclude: str = field(
        default=r"^/(dev|proc|sys|run|var/lib/docker/.+|var/lib/kubelet/.+)($|/)",
        metadata={"check": check_regex},
    )
    #: Network devices left out of the network totals (loopback traffic is not host traffic).
    network_devices_exclude: str = field(default=r"^lo$", metadata={"check": check_regex})


class Usage(NamedTuple):
    """psutil.disk_usage()'s total, used and free (the fields served)."""

    total: int
    used: int
    free: int


def disk_usage(path: str) -> Usage:
    """psutil.disk_usage(path) without the percent: one statvfs, psutil's arithmetic."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return Usage(total, total - st.f_bfree * st.f_frsize, st.f_bavail * st.f_frsize)


_new_family = Metric.__new__
_new_sample = tuple.__new__


class _Shape:
    """A spec's family as built once (and validated) by `MetricSpec.family`, copied per scrape
    with samples made directly: `family(value)` equals `spec.single(value)`, `labelled`
    equals a `spec.family()` given `add(family, labels, value)` for each pair."""

    __slots__ = ("_prototype", "_type", "_sample_name", "_label")

    def __init__(self, spec: MetricSpec) -> None:
        prototype = spec.family()
        self._prototype = prototype.__dict__
        self._type = type(prototype)
        counter = isinstance(prototype, CounterMetricFamily)
        self._sample_name = prototype.name + "_total" if counter else prototype.name
        self._label = spec.labels[0] if len(spec.labels) == 1 else ""

    def _empty(self) -> Metric:
        family: Metric = _new_family(self._type)
        family.__dict__.update(self._prototype)
        return family

    def single(self, value: float) -> Metric:
        family: Metric = _new_family(self._type)
        family.__dict__.update(self._prototype)
        family.samples = [
            _new_sample(Sample, (self._sample_name, {}, float(value), None, None, None))
        ]
        return family

    def by_label(self, values: Iterable[tuple[str, float]]) -> Metric:
        """One sample per (value of the spec's one label, value)."""
        family = self._empty()
        name, label = self._sample_name, self._label
        family.samples = [
            _new_sample(Sample, (name, {label: key}, float(value), None, None, None))
            for key, value in values
        ]
        return family

    def labelled(
        self, names: tuple[str, ...], rows: Iterable[tuple[tuple[str, ...], float]]
    ) -> Metric:
        family = self._empty()
        name = self._sample_name
        family.samples = [
            _new_sample(
                Sample, (name, dict(zip(names, key, strict=True)), float(value), None, None, None)
            )
            for key, value in rows
        ]
        return family


def build(options: Options | None, target: None = None) -> SystemCollector:
    return SystemCollector(options or Options())


class SystemCollector(SourceCollector):
    collector = "system"

    def __init__(self, options: Options, *, ps: ModuleType = psutil) -> None:
        super().__init__("system")
        self.options = options
        self.ps = ps
        self._mount_exclude = re.compile(options.mountpoints_exclude)
        self._net_exclude = re.compile(options.network_devices_exclude)
        self._lock = threading.Lock()
        self._previous_cpu: tuple[float, float] | None = None  # (busy, total) seconds
        #: /proc is read directly only for the real psutil on Linux (a test's stand-in is not)
        #: reading this host's /proc (psutil.PROCFS_PATH may point it at another, mounted)
        self._procfs = (
            ps is psutil
            and psutil.LINUX
            and getattr(psutil, "PROCFS_PATH", procfs.PROC) == procfs.PROC
            and os.path.exists("/proc/meminfo")
        )
        self._whole_disks = procfs.WholeDisks()
        self._net_kept: dict[str, bool] = {}  # device -> counted in the network totals
        self._shapes = {spec.name: _Shape(spec) for spec in SPECS}
        self._files = {
            name: procfs.KeptFile(f"{procfs.PROC}/{name}")
            for name in ("stat", "meminfo", "diskstats", "net/dev")
        }
        self._cpu_modes: tuple[str, ...] = ()
        self._ticks = float(os.sysconf("SC_CLK_TCK")) if self._procfs else 100.0
        #: the mount list, current while `_mount_watch` says nothing changed; None: read it
        self._mounts: list[Any] | None = None
        self._mounts_lock = threading.Lock()
        self._mount_watch = procfs.MountWatch() if self._procfs and _mtab_is_proc() else None

    def close(self) -> None:
        for kept in self._files.values():
            kept.close()
        if self._mount_watch is not None:
            self._mount_watch.close()

    def _singles(self, pairs: Iterable[tuple[MetricSpec, float]]) -> list[Metric]:
        shapes = self._shapes
        return [shapes[spec.name].single(value) for spec, value in pairs]

    def fetch(self, ctx: ScrapeContext) -> list[Metric]:
        families = self._cpu()
        cpus, boot_time = ctx.every("host", HOST_SECONDS, self._host)
        families.append(self._shapes[CPUS.name].single(cpus))
        families += self._memory()
        families += self._load(boot_time)
        families += self._disk_io()
        families += self._network()
        families += self._filesystems(ctx)
        return families

    def _cpu_times(self) -> dict[str, float]:
        if not self._procfs:
            times: dict[str, float] = self.ps.cpu_times()._asdict()
            return times
        if not self._cpu_modes:  # the modes this kernel has, as psutil names them
            self._cpu_modes = tuple(self.ps.cpu_times()._fields)
        modes = self._cpu_modes
        values = procfs.parse_cpu_times(self._files["stat"].read(), len(modes), self._ticks)
        return dict(zip(modes, values, strict=False))

    def _cpu(self) -> list[Metric]:
        modes = self._cpu_times()
        seconds = self._shapes[CPU_SECONDS.name].by_label(modes.items())
        # guest time is already included in user time on Linux: leave it out of the total
        total = sum(v for m, v in modes.items() if m not in ("guest", "guest_nice"))
        busy = total - sum(modes.get(m, 0.0) for m in _IDLE_MODES)
        with self._lock:
            previous = self._previous_cpu or (0.0, 0.0)
            self._previous_cpu = (busy, total)
        delta_total = total - previous[1]
        delta_busy = busy - previous[0]
        percent = 100.0 * delta_busy / delta_total if delta_total > 0 else 0.0
        return [seconds, self._shapes[CPU_PERCENT.name].single(min(100.0, max(0.0, percent)))]

    def _memory(self) -> list[Metric]:
        memory: Any = None
        swap: Any = None
        if self._procfs:
            info = procfs.parse_meminfo_served(self._files["meminfo"].read())
            memory, swap = procfs.memory(info), procfs.swap(info)
        memory = memory or self.ps.virtual_memory()
        swap = swap or self.ps.swap_memory()
        return self._singles(
            [
                (MEMORY_PERCENT, memory.percent),
                *((spec, getattr(memory, attr)) for attr, spec in MEMORY),
                (SWAP_TOTAL, swap.total),
                (SWAP_USED, swap.used),
            ]
        )

    def _host(self) -> tuple[float, float]:
        """(logical CPUs, boot time): what changes only with a CPU hot-plug or a reboot."""
        return float(self.ps.cpu_count() or 0), float(self.ps.boot_time())

    def _load(self, boot_time: float) -> list[Metric]:
        try:
            load = os.getloadavg()
        except OSError:
            return []
        return self._singles([*zip(LOAD, load, strict=True), (BOOT_TIME, boot_time)])

    def _disk_io(self) -> list[Metric]:
        if self._procfs:
            text = self._files["diskstats"].read()
            disk: Any = procfs.parse_diskstats(text, self._whole_disks)
        else:
            disk = self.ps.disk_io_counters(perdisk=False)
        if disk is None:  # no disks visible (some containers)
            return []
        return self._singles((spec, getattr(disk, attr)) for attr, spec in DISK_IO)

    def _network(self) -> list[Metric]:
        if self._procfs:
            text = self._files["net/dev"].read()
            totals = procfs.net_dev_totals(text, _NET_COLUMNS, self._net_counted)
            return self._singles(zip((spec for _, spec in NETWORK), totals, strict=True))
        sums: dict[str, float] = {}
        for device, counters in self.ps.net_io_counters(pernic=True).items():
            if self._net_exclude.search(device):
                continue
            for attr, value in counters._asdict().items():
                sums[attr] = sums.get(attr, 0.0) + float(value)
        return self._singles((spec, sums.get(attr, 0.0)) for attr, spec in NETWORK)

    def _net_counted(self, device: str) -> bool:
        """Whether a device's traffic is in the totals, remembered per name (the answer for
        a name never changes while the collector lives)."""
        counted = self._net_kept.get(device)
        if counted is None:
            counted = not self._net_exclude.search(device)
            if len(self._net_kept) < 4096:  # containers' veth names churn: never grow forever
                self._net_kept[device] = counted
        return counted

    def _filesystems(self, ctx: ScrapeContext) -> list[Metric]:
        usage: dict[tuple[str, str, str], Any] = {}
        statfs = disk_usage if self._procfs else self.ps.disk_usage
        for part in self._mount_list(ctx):
            if ctx.deadline.expired():
                break
            try:
                usage[(part.mountpoint, part.fstype, part.device)] = statfs(part.mountpoint)
            except OSError:
                continue  # unmounted between listing and statfs, or no permission
        kept = ctx.keep_top(
            {key: float(u.total) for key, u in usage.items()}, self.options.filesystem_limit
        )
        keys = sorted(kept)
        return [
            self._shapes[spec.name].labelled(
                _FS_LABELS, [(key, getattr(usage[key], attr)) for key in keys]
            )
            for attr, spec in FILESYSTEM
        ]

    def _mount_list(self, ctx: ScrapeContext) -> list[Any]:
        """The filesystems to report: read again when the kernel signals a change of the
        mount table (each scrape asks, with one poll), else every MOUNTS_SECONDS."""
        watch = self._mount_watch
        if watch is None:
            mounts: list[Any] = ctx.every(
                "mounts", MOUNTS_SECONDS, lambda: list(self._partitions())
            )
            return mounts
        with self._mounts_lock:  # a concurrent scrape waits for the list a change made it read
            if watch.changed() or self._mounts is None:
                self._mounts = None  # a read that fails leaves nothing to serve as current
                self._mounts = list(self._partitions())
            return self._mounts

    def _partitions(self) -> Iterable[Any]:
        seen: set[str] = set()
        for part in self.ps.disk_partitions(all=False):
            if part.mountpoint in seen or self._mount_exclude.search(part.mountpoint):
                continue
            seen.add(part.mountpoint)
            yield part


def _mtab_is_proc() -> bool:
    """Whether psutil.disk_partitions reads the kernel's own table (a /proc/.../mounts file,
    whose changes /proc/self/mounts signals): it reads /etc/mtab when there is one."""
    if not os.path.isfile("/etc/mtab"):
        return True
    real = os.path.realpath("/etc/mtab")
    return real.startswith(f"{procfs.PROC}/") and real.endswith("/mounts")
