"""collectors/system.py against the real host (psutil), with the engine's budget accounting."""

from __future__ import annotations

import os

import psutil

from collectors.base import Deadline
from collectors.system import Options, SystemCollector
from tests.support import Samples, family_samples, samples_of


def sample_values(collector: SystemCollector) -> Samples:
    result = collector.run(Deadline.after(5))
    assert result.success, result.reason
    return family_samples(result.families)


def test_contract_families_are_present_and_plausible():
    values = sample_values(SystemCollector(Options()))
    for name in (
        "system_cpu_percent",
        "system_memory_percent",
        "system_disk_io_read_bytes_total",
        "system_disk_io_write_bytes_total",
        "system_network_sent_bytes_total",
        "system_network_recv_bytes_total",
    ):
        assert values.value(name) is not None, name
    assert 0 <= values.value("system_cpu_percent") <= 100
    total = values.value("system_memory_total_bytes")
    assert total == psutil.virtual_memory().total
    assert abs(values.value("system_load1") - os.getloadavg()[0]) < 5
    assert values.value("system_cpus") == psutil.cpu_count()


def test_cpu_percent_is_measured_between_scrapes_without_blocking():
    collector = SystemCollector(Options())
    sample_values(collector)
    # burn CPU in this process between two scrapes: the second one must see it
    deadline = psutil.cpu_times()
    x = 0
    while psutil.cpu_times().user - deadline.user < 0.3:
        x += 1
    second = sample_values(collector).value("system_cpu_percent")
    assert second > 10.0


def test_cpu_seconds_by_mode_match_psutil():
    values = sample_values(SystemCollector(Options()))
    idle = values.value("system_cpu_seconds_total", mode="idle")
    assert abs(idle - psutil.cpu_times().idle) < 5.0


def test_filesystem_budget_counts_dropped_mounts():
    collector = SystemCollector(Options(filesystem_limit=1, mountpoints_exclude="^$"))
    result = collector.run(Deadline.after(5))
    mounts = {
        s.labels["mountpoint"] for s in samples_of(result.families, "system_filesystem_size_bytes")
    }
    visible = {p.mountpoint for p in psutil.disk_partitions(all=False)}
    assert len(mounts) == min(1, len(visible))
    assert result.series_dropped == max(0, len(visible) - 1)


def test_loopback_is_left_out_of_network_totals_by_default():
    values = sample_values(SystemCollector(Options()))
    counters = psutil.net_io_counters(pernic=True)
    without_lo = sum(c.bytes_recv for name, c in counters.items() if name != "lo")
    assert values.value("system_network_recv_bytes_total") <= without_lo + 10_000_000
    with_lo = sample_values(SystemCollector(Options(network_devices_exclude="^$")))
    assert with_lo.value("system_network_recv_bytes_total") >= values.value(
        "system_network_recv_bytes_total"
    )
