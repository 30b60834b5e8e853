"""collectors/procfs.py: the same numbers as psutil on this host, and on captured files."""

from __future__ import annotations

import psutil
import pytest

from collectors import procfs
from collectors.base import Deadline
from collectors.system import Options, SystemCollector
from tests.support import family_samples

# a host with a partition line of Linux 2.6 (7 fields), a 2.4 line (15) and a 5.5+ line (20)
DISKSTATS = b"""\
   8       0 sda 100 5 2000 30 40 6 800 70 0 90 100
   8       1 sda1 60 1200 20 400
   3       0   8 hda 11 12 13 14 15 16 17 18 19 20 21
 259       0 nvme0n1 7 1 64 2 3 0 24 1 0 5 3 0 0 0 0 9 1 2 3
 259       1 nvme0n1p1 5 0 40 1 2 0 16 1 0 3 2 0 0 0 0 0 0 0 0
"""
NET_DEV = b"""\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0
  eth0: 1000 10 1 2 0 0 0 0 300 3 4 5 0 0 0 0
"""  # noqa: E501
MEMINFO = b"""\
MemTotal:        1000 kB
MemFree:          200 kB
MemAvailable:     600 kB
SwapTotal:        400 kB
SwapFree:         100 kB
"""


def test_diskstats_sum_whole_disks_of_every_line_format():
    whole = {"sda", "hda", "nvme0n1"}.__contains__
    disk = procfs.parse_diskstats(DISKSTATS, whole)
    assert disk == procfs.DiskIO(
        read_count=100 + 8 + 7,  # 2.4: reads before the name's column, as psutil reads it
        write_count=40 + 14 + 3,
        read_bytes=(2000 + 12 + 64) * 512,
        write_bytes=(800 + 16 + 24) * 512,
    )
    partition = procfs.parse_diskstats(DISKSTATS, {"sda1"}.__contains__)
    assert partition == procfs.DiskIO(60, 20, 1200 * 512, 400 * 512)
    assert procfs.parse_diskstats(DISKSTATS, lambda name: False) is None
    with pytest.raises(ValueError, match="diskstats"):
        procfs.parse_diskstats(b"8 0 sda 1 2\n", whole)


def test_net_dev_columns_are_psutils():
    devices = procfs.parse_net_dev(NET_DEV)
    eth0 = {attr: devices["eth0"][column] for attr, column in procfs.NET_COLUMNS.items()}
    assert eth0 == {
        "bytes_recv": 1000,
        "packets_recv": 10,
        "errin": 1,
        "dropin": 2,
        "bytes_sent": 300,
        "packets_sent": 3,
        "errout": 4,
        "dropout": 5,
    }
    assert set(devices) == {"lo", "eth0"}


def test_memory_and_swap_follow_psutils_definitions():
    info = procfs.parse_meminfo(MEMINFO)
    assert procfs.memory(info) == procfs.Memory(
        total=1024_000, available=614_400, used=409_600, free=204_800, percent=40.0
    )
    assert procfs.swap(info) == procfs.Swap(total=409_600, used=307_200)
    # no MemAvailable (Linux before 3.14) or no swap fields: psutil is asked instead
    assert procfs.memory({b"MemTotal": 1, b"MemFree": 1}) is None
    assert procfs.swap({}) is None


def test_this_host_matches_psutil():
    info = procfs.parse_meminfo(procfs.read("/proc/meminfo"))
    memory, swap = procfs.memory(info), procfs.swap(info)
    assert memory is not None and swap is not None
    theirs = psutil.virtual_memory()
    assert memory.total == theirs.total
    assert abs(memory.available - theirs.available) < 64 * 2**20  # read a moment apart
    assert memory.used == memory.total - memory.available
    assert swap.total == psutil.swap_memory().total

    before = psutil.disk_io_counters(perdisk=False)
    ours = procfs.parse_diskstats(procfs.read("/proc/diskstats"), procfs.WholeDisks())
    after = psutil.disk_io_counters(perdisk=False)
    assert (ours is None) == (before is None)
    if ours is not None and before is not None and after is not None:
        for attr in ("read_count", "write_count", "read_bytes", "write_bytes"):
            assert getattr(before, attr) <= getattr(ours, attr) <= getattr(after, attr), attr

    nics = psutil.net_io_counters(pernic=True)
    devices = procfs.parse_net_dev(procfs.read("/proc/net/dev"))
    assert set(devices) == set(nics)
    after_nics = psutil.net_io_counters(pernic=True)
    for name, counters in devices.items():
        for attr, column in procfs.NET_COLUMNS.items():
            low, high = getattr(nics[name], attr), getattr(after_nics[name], attr)
            assert low <= counters[column] <= high, (name, attr)


def test_whole_disks_are_those_in_sys_block(tmp_path):
    (tmp_path / "sda").mkdir()
    (tmp_path / "cciss!c0d0").mkdir()
    whole = procfs.WholeDisks(str(tmp_path))
    assert whole("sda") and whole("cciss/c0d0")
    assert not whole("sda1")


def test_collector_reads_proc_as_psutil_would():
    """The collector's /proc path and its psutil path serve the same numbers."""
    fast = SystemCollector(Options())
    assert fast._procfs
    slow = SystemCollector(Options())
    slow._procfs = False
    values = family_samples(fast.run(Deadline.after(5)).families)
    reference = family_samples(slow.run(Deadline.after(5)).families)
    for name in ("system_memory_total_bytes", "system_swap_total_bytes"):
        assert values.value(name) == reference.value(name), name
    for name in ("system_disk_io_reads_total", "system_network_recv_packets_total"):
        assert values.value(name) <= reference.value(name), name
        assert reference.value(name) - values.value(name) < 10_000_000, name
