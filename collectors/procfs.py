"""The host's memory, disk and network counters read straight from /proc: only what is served.

Why not psutil for these: per scrape, `swap_memory()` also reads all of /proc/vmstat (for
swap-in/out counts we do not serve), `disk_io_counters()` checks /sys/block for every device
on every call, and each call reads /proc/meminfo again; together they were about 0.7 ms of the
host collector's 1.2 ms. The values keep psutil 7's definitions (tests/test_system_procfs.py
compares them with psutil on this host and on captured files); where /proc lacks a field
psutil would estimate (MemAvailable before Linux 3.14, a missing SwapTotal), None is returned
and the collector asks psutil instead.

Counters are the kernel's own. psutil's `nowrap` (adding back a counter that went down) is
not repeated: on 64-bit Linux both files carry 64-bit counters, and a device that goes away
lowers psutil's sum just the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

#: /proc/diskstats counts sectors of 512 bytes whatever the device's own sector size.
SECTOR_BYTES = 512
PROC = "/proc"


@dataclass(frozen=True)
class Memory:
    total: int
    available: int
    used: int
    free: int
    percent: float


@dataclass(frozen=True)
class Swap:
    total: int
    used: int


@dataclass(frozen=True)
class DiskIO:
    read_count: int
    write_count: int
    read_bytes: int
    write_bytes: int


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def parse_meminfo(text: bytes) -> dict[bytes, int]:
    """`/proc/meminfo` as field -> bytes (the file says kB: KiB)."""
    values = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            values[fields[0].rstrip(b":")] = int(fields[1]) * 1024
    return values


def memory(info: dict[bytes, int]) -> Memory | None:
    """psutil.virtual_memory()'s total, available, used, free and percent; None without
    MemAvailable (psutil would estimate it)."""
    total, free, available = info.get(b"MemTotal"), info.get(b"MemFree"), info.get(b"MemAvailable")
    if total is None or free is None or not available:
        return None
    if available > total:
        available = free
    used = total - available
    percent = round(used / total * 100, 1) if total else 0.0
    return Memory(total, available, used, free, percent)


def swap(info: dict[bytes, int]) -> Swap | None:
    """psutil.swap_memory()'s total and used; None without the fields."""
    total, free = info.get(b"SwapTotal"), info.get(b"SwapFree")
    if total is None or free is None:
        return None
    return Swap(total, total - free)


def parse_diskstats(text: bytes, whole: Callable[[str], bool]) -> DiskIO | None:
    """psutil.disk_io_counters(perdisk=False): the sums over the devices `whole` accepts
    (whole disks, not their partitions); None when there are none."""
    totals = [0, 0, 0, 0]  # reads, writes, sectors read, sectors written
    found = False
    for line in text.splitlines():
        fields = line.split()
        count = len(fields)
        if count == 15:  # Linux 2.4: the name is one field later
            name, columns = fields[3], (2, 7, 5, 9)
        elif count == 14 or count >= 18:
            name, columns = fields[2], _DISK_COLUMNS
        elif count == 7:  # a partition of Linux 2.6: reads, sectors, writes, sectors
            name, columns = fields[2], (3, 5, 4, 6)
        else:
            raise ValueError(f"/proc/diskstats: cannot read line {line!r}")
        if not whole(name.decode()):
            continue
        found = True
        for i, column in enumerate(columns):
            totals[i] += int(fields[column])
    if not found:
        return None
    reads, writes, rsectors, wsectors = totals
    return DiskIO(reads, writes, rsectors * SECTOR_BYTES, wsectors * SECTOR_BYTES)


#: /proc/diskstats columns (Linux 2.6+) of reads, writes, sectors read and sectors written
_DISK_COLUMNS = (3, 7, 5, 9)


class WholeDisks:
    """Whether a device of /proc/diskstats is a whole disk (psutil's test: it has an entry in
    /sys/block; partitions do not), remembered per name: a name's kind never changes, and
    asking /sys again for every device on every scrape was most of the disk counters' cost."""

    def __init__(self, sys_block: str = "/sys/block") -> None:
        self.sys_block = sys_block
        self._known: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        known = self._known.get(name)
        if known is None:
            path = os.path.join(self.sys_block, name.replace("/", "!"))
            known = self._known[name] = os.access(path, os.F_OK)
        return known


#: /proc/net/dev columns after the colon, by the psutil name of the counter
NET_COLUMNS = {
    "bytes_recv": 0,
    "packets_recv": 1,
    "errin": 2,
    "dropin": 3,
    "bytes_sent": 8,
    "packets_sent": 9,
    "errout": 10,
    "dropout": 11,
}


def parse_net_dev(text: bytes) -> dict[str, list[int]]:
    """`/proc/net/dev` as device -> its 16 counters (receive then transmit)."""
    devices = {}
    for line in text.splitlines()[2:]:
        name, colon, rest = line.rpartition(b":")
        if not colon:
            raise ValueError(f"/proc/net/dev: cannot read line {line!r}")
        devices[name.strip().decode()] = [int(x) for x in rest.split()]
    return devices
