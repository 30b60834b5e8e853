"""The host's CPU, memory, disk and network counters read straight from /proc: only what is served.

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

The files are kept open (`KeptFile`) and read again from offset 0 at every scrape: /proc
generates a file's text anew at each read from offset 0, and opening and closing it was half
of what reading it cost. The mount table is re-read only when the kernel says it changed
(`MountWatch`).
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable, Sequence
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


#: Bytes asked for per read: one read holds every file read here on most hosts; a bigger
#: file takes more reads (seq_file hands out about a page at a time anyway).
READ_SIZE = 65536


class KeptFile:
    """A /proc file opened once and read again from offset 0 at every `read()` (os.pread).

    Why: open and close were about half of a /proc read's cost (/proc/net/dev 17 us opened
    each time, 6 us kept). seq_file, behind every file read here, restarts its text at offset
    0, so each read is as fresh as a new open; reads go on to end of file, as `f.read()` does.
    pread has no shared file position, so concurrent scrapes do not disturb each other; the
    lock keeps a reopen from closing a descriptor another thread is reading.

    A read that fails (the descriptor closed under us, for instance) closes it and opens the
    path again once; a second failure raises, so the collector reports down. A forked child
    opens its own: /proc/self was resolved to the parent's pid when the parent opened it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd = -1
        self._pid = 0

    def read(self) -> bytes:
        with self._lock:
            if self._fd < 0 or self._pid != os.getpid():
                self._open()
            try:
                return self._read()
            except OSError:
                self._open()
                return self._read()

    def _read(self) -> bytes:
        data = os.pread(self._fd, READ_SIZE, 0)
        if not data:
            return data
        while True:
            more = os.pread(self._fd, READ_SIZE, len(data))
            if not more:
                return data
            data += more

    def _open(self) -> None:
        self._close()
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        self._pid = os.getpid()

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        # a forked child leaves the inherited number alone: it may have closed and reused it
        if fd >= 0 and self._pid == os.getpid():
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        """Close the descriptor (a later read opens it again). Never waits for a read."""
        if self._lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._lock.release()

    def __del__(self) -> None:
        self._close()


class MountWatch:
    """Whether the mount table may have changed since the previous call.

    The kernel marks every mount or unmount in this mount namespace on each open descriptor
    of /proc/self/mounts: poll() reports POLLPRI and POLLERR once per change and descriptor
    (proc(5)). So a mount list read after a call that answered True stays current until a call
    answers True again, and asking costs one poll instead of reading and parsing the table.
    Anything unexpected (the descriptor gone, a forked child, a poll error) answers True.
    """

    def __init__(self, path: str = f"{PROC}/self/mounts") -> None:
        self.path = path
        self._file = KeptFile(path)
        self._poll: select.poll | None = None

    def changed(self) -> bool:
        """True at the first call, then whenever the table changed (call before reading it)."""
        kept = self._file
        with kept._lock:
            poll = self._poll
            if poll is None or kept._fd < 0 or kept._pid != os.getpid():
                return self._start()
            try:
                events = poll.poll(0)
            except OSError:
                return self._start()
            for _, event in events:
                if event & select.POLLNVAL:
                    return self._start()
                if event & (select.POLLPRI | select.POLLERR):
                    return True
            return False

    def _start(self) -> bool:
        """Open anew (the open descriptor's mark is the table as of now): a change after this
        shows at the next call."""
        self._poll = None
        self._file._open()
        poll = select.poll()
        poll.register(self._file._fd, select.POLLPRI | select.POLLERR)
        self._poll = poll
        return True

    def close(self) -> None:
        self._poll = None
        self._file.close()


def parse_meminfo(text: bytes) -> dict[bytes, int]:
    """`/proc/meminfo` as field -> bytes (the file says kB: KiB)."""
    values = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            values[fields[0].rstrip(b":")] = int(fields[1]) * 1024
    return values


#: The /proc/meminfo fields `memory` and `swap` use.
MEMINFO_SERVED = (b"MemTotal", b"MemFree", b"MemAvailable", b"SwapTotal", b"SwapFree")
_MEMINFO_NEEDLES = tuple((key, b"\n" + key + b":") for key in MEMINFO_SERVED)


def parse_meminfo_served(text: bytes) -> dict[bytes, int]:
    """`parse_meminfo(text)` narrowed to MEMINFO_SERVED: each field found, not every line split
    (the file has some 55 lines; five are served)."""
    text = b"\n" + text
    values = {}
    for key, needle in _MEMINFO_NEEDLES:
        start = text.find(needle)
        if start < 0:
            continue
        start += len(needle)
        fields = text[start : text.find(b"\n", start)].split()
        if fields:
            values[key] = int(fields[0]) * 1024
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


def parse_diskstats(text: bytes, whole: Callable[[bytes], bool]) -> DiskIO | None:
    """psutil.disk_io_counters(perdisk=False): the sums over the devices `whole` accepts
    (whole disks, not their partitions); None when there are none."""
    reads = writes = rsectors = wsectors = 0
    found = False
    for line in text.splitlines():
        fields = line.split()
        count = len(fields)
        if count == 14 or count >= 18:
            name, (r, w, rs, ws) = fields[2], _DISK_COLUMNS
        elif count == 15:  # Linux 2.4: the name is one field later
            name, (r, w, rs, ws) = fields[3], (2, 7, 5, 9)
        elif count == 7:  # a partition of Linux 2.6: reads, sectors, writes, sectors
            name, (r, w, rs, ws) = fields[2], (3, 5, 4, 6)
        else:
            raise ValueError(f"/proc/diskstats: cannot read line {line!r}")
        if not whole(name):
            continue
        found = True
        reads += int(fields[r])
        writes += int(fields[w])
        rsectors += int(fields[rs])
        wsectors += int(fields[ws])
    if not found:
        return None
    return DiskIO(reads, writes, rsectors * SECTOR_BYTES, wsectors * SECTOR_BYTES)


#: /proc/diskstats columns (Linux 2.6+) of reads, writes, sectors read and sectors written
_DISK_COLUMNS = (3, 7, 5, 9)


class WholeDisks:
    """Whether a device of /proc/diskstats is a whole disk (psutil's test: it has an entry in
    /sys/block; partitions do not), remembered per name: a name's kind never changes, and
    asking /sys again for every device on every scrape was most of the disk counters' cost."""

    def __init__(self, sys_block: str = "/sys/block") -> None:
        self.sys_block = sys_block
        self._known: dict[bytes, bool] = {}

    def __call__(self, name: bytes) -> bool:
        known = self._known.get(name)
        if known is None:
            path = os.path.join(self.sys_block, name.decode().replace("/", "!"))
            known = self._known[name] = os.access(path, os.F_OK)
        return known


def parse_cpu_times(text: bytes, modes: int, ticks: float) -> list[float]:
    """psutil.cpu_times() from /proc/stat's text: the first `modes` counters of its first
    line (`cpu`, summed over CPUs), in seconds."""
    end = text.find(b"\n")
    fields = text[: end if end >= 0 else len(text)].split()
    if len(fields) < 2 or fields[0] != b"cpu":
        raise ValueError("/proc/stat: no cpu line first")
    return [float(x) / ticks for x in fields[1 : modes + 1]]


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


def net_dev_totals(text: bytes, columns: Sequence[int], keep: Callable[[str], bool]) -> list[int]:
    """The sums of `columns` of `/proc/net/dev` over the devices `keep` accepts: the
    collector's totals without building every device's 16 counters (`parse_net_dev`)."""
    totals = [0] * len(columns)
    for line in text.splitlines()[2:]:
        name, colon, rest = line.rpartition(b":")
        if not colon:
            raise ValueError(f"/proc/net/dev: cannot read line {line!r}")
        if not keep(name.strip().decode()):
            continue
        counters = rest.split()
        for i, column in enumerate(columns):
            totals[i] += int(counters[column])
    return totals
