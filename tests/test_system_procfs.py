"""collectors/procfs.py: the same numbers as psutil on this host, and on captured files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import psutil
import pytest

from collectors import procfs, system
from collectors.base import Deadline
from collectors.specs import add
from collectors.system import Options, SystemCollector
from tests.support import ROOT, family_samples, unavailable

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
    whole = {b"sda", b"hda", b"nvme0n1"}.__contains__
    disk = procfs.parse_diskstats(DISKSTATS, whole)
    assert disk == procfs.DiskIO(
        read_count=100 + 8 + 7,  # 2.4: reads before the name's column, as psutil reads it
        write_count=40 + 14 + 3,
        read_bytes=(2000 + 12 + 64) * 512,
        write_bytes=(800 + 16 + 24) * 512,
    )
    partition = procfs.parse_diskstats(DISKSTATS, {b"sda1"}.__contains__)
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
    assert whole(b"sda") and whole(b"cciss/c0d0")
    assert not whole(b"sda1")


def general_path() -> SystemCollector:
    """The collector asking psutil for everything (what an injected `ps` gets)."""
    slow = SystemCollector(Options(mountpoints_exclude="^$"))
    slow._procfs = False
    slow._mount_watch = None
    return slow


def shape(families):
    return [
        (f.name, f.type, f.documentation, f.unit, [(s.name, s.labels) for s in f.samples])
        for f in families
    ]


def test_collector_reads_proc_as_psutil_would():
    """The collector's /proc path and its psutil path serve the same families and numbers."""
    fast = SystemCollector(Options(mountpoints_exclude="^$"))
    assert fast._procfs and fast._mount_watch is not None
    slow = general_path()
    first = fast.run(Deadline.after(5)).families
    second = slow.run(Deadline.after(5)).families
    third = fast.run(Deadline.after(5)).families
    assert shape(first) == shape(second) == shape(third)
    values, reference = family_samples(first), family_samples(second)
    later = family_samples(third)
    for name in ("system_memory_total_bytes", "system_swap_total_bytes", "system_cpus"):
        assert values.value(name) == reference.value(name), name
    for name, labels in [
        ("system_disk_io_reads_total", {}),
        ("system_disk_io_read_bytes_total", {}),
        ("system_network_recv_packets_total", {}),
        ("system_network_sent_bytes_total", {}),
        ("system_cpu_seconds_total", {"mode": "idle"}),
        ("system_cpu_seconds_total", {"mode": "user"}),
    ]:  # counters read in turn: ours, psutil's, ours
        assert values.value(name, **labels) <= reference.value(name, **labels), name
        assert reference.value(name, **labels) <= later.value(name, **labels), name
    for part in psutil.disk_partitions(all=False):
        labels = {"mountpoint": part.mountpoint, "fstype": part.fstype, "device": part.device}
        usage = psutil.disk_usage(part.mountpoint)
        assert values.value("system_filesystem_size_bytes", **labels) == usage.total
        assert abs(values.value("system_filesystem_avail_bytes", **labels) - usage.free) < 2**30


def test_families_built_directly_equal_the_specs_own():
    collector = SystemCollector(Options())
    for spec in system.SPECS:
        made = collector._shapes[spec.name]
        if not spec.labels:
            assert made.single(3) == spec.single(3.0), spec.name
            continue
        expected = spec.family()
        rows = [(tuple(f"{label}-{i}" for label in spec.labels), float(i)) for i in range(3)]
        for labels, value in rows:
            add(expected, labels, value)
        assert made.labelled(spec.labels, rows) == expected, spec.name
        if len(spec.labels) == 1:
            assert made.by_label((k[0], v) for k, v in rows) == expected, spec.name


def test_a_proc_file_that_cannot_be_read_makes_the_collector_report_down(tmp_path):
    collector = SystemCollector(Options())
    assert collector.run(Deadline.after(5)).success
    collector._files["meminfo"] = procfs.KeptFile(str(tmp_path / "gone"))
    result = collector.run(Deadline.after(5))
    assert not result.success and result.families == []
    collector._files["meminfo"] = procfs.KeptFile("/proc/meminfo")
    assert collector.run(Deadline.after(5)).success
    collector.close()
    assert all(kept._fd == -1 for kept in collector._files.values())
    assert collector.run(Deadline.after(5)).success  # closed files open again when read


STAT = b"""\
cpu  100 2 30 4000 5 6 7 8 9 10
cpu0 50 1 15 2000 2 3 3 4 4 5
intr 12345 0 0
btime 1700000000
"""


def test_cpu_times_are_the_first_lines_counters_in_seconds():
    assert procfs.parse_cpu_times(STAT, 10, 100.0) == [
        1.0, 0.02, 0.3, 40.0, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1
    ]  # fmt: skip
    assert procfs.parse_cpu_times(STAT, 7, 100.0) == [1.0, 0.02, 0.3, 40.0, 0.05, 0.06, 0.07]
    with pytest.raises(ValueError, match="cpu line"):
        procfs.parse_cpu_times(b"intr 1 2\n", 10, 100.0)
    ticks = float(os.sysconf("SC_CLK_TCK"))
    ours = procfs.parse_cpu_times(procfs.read("/proc/stat"), len(psutil.cpu_times()), ticks)
    after = psutil.cpu_times()
    assert len(ours) == len(after)
    for mine, theirs in zip(ours, after, strict=True):
        assert theirs - 5 <= mine <= theirs


def test_served_meminfo_fields_are_parse_meminfos():
    for text in (MEMINFO, procfs.read("/proc/meminfo"), MEMINFO.replace(b"MemAvailable", b"X")):
        everything = procfs.parse_meminfo(text)
        served = {k: v for k, v in everything.items() if k in procfs.MEMINFO_SERVED}
        assert procfs.parse_meminfo_served(text) == served
    assert procfs.parse_meminfo_served(b"") == {}


def test_net_dev_totals_are_the_sums_of_the_kept_devices():
    columns = list(procfs.NET_COLUMNS.values())
    for text in (NET_DEV, procfs.read("/proc/net/dev")):
        devices = procfs.parse_net_dev(text)
        for keep in (lambda d: d != "lo", lambda d: True, lambda d: False):
            expected = [sum(c[i] for d, c in devices.items() if keep(d)) for i in columns]
            assert procfs.net_dev_totals(text, columns, keep) == expected
    with pytest.raises(ValueError, match="net/dev"):
        procfs.net_dev_totals(b"a\nb\nno colon here\n", columns, lambda d: True)


def test_a_kept_file_reads_what_a_fresh_open_reads(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * (3 * procfs.READ_SIZE + 5))  # several reads to the end
    kept = procfs.KeptFile(str(path))
    assert kept.read() == path.read_bytes()
    path.write_bytes(b"shorter")  # same file, new text: read from offset 0 again
    assert kept.read() == b"shorter"
    # a /proc file longer than the page seq_file hands out per read
    assert len(procfs.KeptFile("/proc/crypto").read()) == len(procfs.read("/proc/crypto"))
    # this process's stat, through a descriptor kept open, moves on like a fresh read
    stat = procfs.KeptFile("/proc/self/stat")
    first = stat.read().split(b")")[-1].split()
    deadline = psutil.cpu_times().user + 0.2
    while psutil.cpu_times().user < deadline:
        pass
    again = stat.read().split(b")")[-1].split()
    assert int(again[11]) > int(first[11])  # utime


def test_a_kept_file_opens_again_when_its_descriptor_fails(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"one")
    kept = procfs.KeptFile(str(path))
    assert kept.read() == b"one"
    os.close(kept._fd)  # closed under it
    path.write_bytes(b"two")
    assert kept.read() == b"two"
    os.close(kept._fd)
    path.unlink()  # and the path is gone: no stale text, an error the collector reports
    with pytest.raises(FileNotFoundError):
        kept.read()
    path.write_bytes(b"three")
    assert kept.read() == b"three"
    kept.close()
    assert kept._fd == -1
    assert kept.read() == b"three"


def test_a_forked_child_reads_its_own_proc_self():
    kept = procfs.KeptFile("/proc/self/stat")
    assert int(kept.read().split()[0]) == os.getpid()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: /proc/self of the parent's open names the parent
        try:
            os.write(writer, kept.read().split()[0])
        finally:
            os._exit(0)
    os.close(writer)
    try:
        assert int(os.read(reader, 100)) == pid
    finally:
        os.close(reader)
        os.waitpid(pid, 0)
    assert int(kept.read().split()[0]) == os.getpid()  # the parent's descriptor untouched


#: Run in a private mount namespace: a bind mount shows at the next scrape, and goes with
#: the unmount, whatever the interval the list would otherwise be cached for.
MOUNT_SCRIPT = """
import json, subprocess, sys, tempfile
from collectors import procfs, system
from collectors.base import Deadline
from collectors.specs import add
from collectors.system import Options, SystemCollector

point = tempfile.mkdtemp()
watch = procfs.MountWatch()
collector = SystemCollector(Options(mountpoints_exclude="^$"))
def mounted():
    result = collector.run(Deadline.after(5))
    assert result.success, result
    return any(s.labels["mountpoint"] == point for f in result.families
               if f.name == "system_filesystem_size_bytes" for s in f.samples)
steps = [watch.changed(), watch.changed(), mounted(), mounted()]
subprocess.run(["mount", "--bind", sys.argv[1], point], check=True)
steps += [watch.changed(), watch.changed(), mounted(), mounted()]
subprocess.run(["umount", point], check=True)
steps += [watch.changed(), mounted()]
print(json.dumps(steps))
"""


def test_the_mount_list_follows_the_kernels_change_signal(tmp_path):
    unshare = shutil.which("unshare")
    if unshare is None:
        unavailable("unshare (util-linux) is not installed")
    flags = "-m" if os.geteuid() == 0 else "-rm"
    done = subprocess.run(
        [unshare, flags, sys.executable, "-c", MOUNT_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if done.returncode != 0 and "unshare failed" in done.stderr:
        unavailable(f"no private mount namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        True, False, False, False,  # the first call, then nothing changed
        True, False, True, True,  # the bind mount: signalled once, served at once
        True, False,  # unmounted: gone at the next scrape
    ]  # fmt: skip


def test_psutil_pointed_at_another_proc_is_asked_for_everything(monkeypatch):
    monkeypatch.setattr(psutil, "PROCFS_PATH", "/host/proc")  # a container's view of its host
    collector = SystemCollector(Options())
    assert not collector._procfs and collector._mount_watch is None
