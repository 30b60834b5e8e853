"""The host: CPU, memory, filesystems."""

from __future__ import annotations

from alerts.rules import Alert, Area, Record, selector
from alerts.thresholds import (
    HOST_CPU_FOR,
    HOST_CPU_RATIO,
    HOST_DISK_FOR,
    HOST_DISK_FREE_RATIO,
    HOST_MEMORY_FOR,
    HOST_MEMORY_PERCENT,
)

IDLE = 'mode=~"idle|iowait"'
NOT_GUEST = 'mode!~"guest|guest_nice"'  # guest time is already counted in user time

AREA = Area(
    "host",
    records=(
        Record(
            "job_instance:system_cpu_utilisation:rate5m",
            "1 - (\n"
            "  sum by (job, instance) "
            f"(rate(system_cpu_seconds_total{selector(IDLE)}[5m]))\n"
            "  / (sum by (job, instance) "
            f"(rate(system_cpu_seconds_total{selector(NOT_GUEST)}[5m])) > 0)\n"
            ")",
        ),
        Record(
            "job_instance_mountpoint:system_filesystem_avail:ratio",
            f"system_filesystem_avail_bytes{selector()}\n"
            f"/ (system_filesystem_size_bytes{selector()} > 0)",
        ),
    ),
    alerts=(
        Alert(
            "AfirgenHostCpuHigh",
            f"job_instance:system_cpu_utilisation:rate5m > {HOST_CPU_RATIO}",
            HOST_CPU_FOR,
            "warning",
            "The host's CPU is saturated.",
            "CPU of {{ $labels.instance }} is {{ $value | humanizePercentage }} busy.",
        ),
        Alert(
            "AfirgenHostMemoryHigh",
            f"system_memory_percent{selector()} > {HOST_MEMORY_PERCENT}",
            HOST_MEMORY_FOR,
            "warning",
            "The host is running out of memory.",
            "{{ $labels.instance }} uses {{ $value | humanize }}% of its memory.",
        ),
        Alert(
            "AfirgenHostDiskSpaceLow",
            f"job_instance_mountpoint:system_filesystem_avail:ratio < {HOST_DISK_FREE_RATIO}",
            HOST_DISK_FOR,
            "warning",
            "A filesystem is almost full.",
            "Only {{ $value | humanizePercentage }} of {{ $labels.mountpoint }} on "
            "{{ $labels.instance }} is free.",
        ),
    ),
)
