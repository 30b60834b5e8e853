"""The Host dashboard: CPU, memory, load, disk and network I/O, filesystems."""

from __future__ import annotations

from grafana.panels import (
    RATE,
    TARGET,
    Board,
    Row,
    instance_variable,
    job_variable,
    query,
    timeseries_panel,
)

BOARD = Board(
    "afirgen-host",
    "afirgen / Host",
    "The host the exporter runs on, through psutil: CPU, memory, load, disk and network I/O, "
    "filesystems.",
    [job_variable(), instance_variable("system_memory_percent")],
    [
        Row(
            "CPU and memory",
            [
                timeseries_panel(
                    "CPU busy",
                    "Share of CPU time not idle, from the CPU-seconds counters.",
                    "percentunit",
                    query(
                        f"job_instance:system_cpu_utilisation:rate5m{{{TARGET}}}", "{{instance}}"
                    ),
                    max=1,
                ),
                timeseries_panel(
                    "Memory used",
                    "Memory in use, percent of total (total - available).",
                    "percent",
                    query(f"system_memory_percent{{{TARGET}}}", "{{instance}}"),
                    max=100,
                ),
                timeseries_panel(
                    "Load",
                    "Load averages over 1, 5 and 15 minutes, against the CPU count.",
                    "short",
                    query(f"system_load1{{{TARGET}}}", "{{instance}} 1m"),
                    query(f"system_load5{{{TARGET}}}", "{{instance}} 5m"),
                    query(f"system_load15{{{TARGET}}}", "{{instance}} 15m"),
                    query(f"system_cpus{{{TARGET}}}", "{{instance}} CPUs"),
                ),
                timeseries_panel(
                    "Memory",
                    "Available and used memory.",
                    "bytes",
                    query(f"system_memory_available_bytes{{{TARGET}}}", "{{instance}} available"),
                    query(f"system_memory_used_bytes{{{TARGET}}}", "{{instance}} used"),
                ),
            ],
        ),
        Row(
            "I/O and filesystems",
            [
                timeseries_panel(
                    "Disk I/O",
                    "Bytes read and written per second, all disks.",
                    "Bps",
                    query(
                        f"rate(system_disk_io_read_bytes_total{{{TARGET}}}[{RATE}])",
                        "{{instance}} read",
                    ),
                    query(
                        f"rate(system_disk_io_write_bytes_total{{{TARGET}}}[{RATE}])",
                        "{{instance}} write",
                    ),
                ),
                timeseries_panel(
                    "Network",
                    "Bytes sent and received per second, loopback excluded.",
                    "Bps",
                    query(
                        f"rate(system_network_sent_bytes_total{{{TARGET}}}[{RATE}])",
                        "{{instance}} sent",
                    ),
                    query(
                        f"rate(system_network_recv_bytes_total{{{TARGET}}}[{RATE}])",
                        "{{instance}} received",
                    ),
                ),
                timeseries_panel(
                    "Filesystem free",
                    "Space available over filesystem size, per mount point.",
                    "percentunit",
                    query(
                        f"job_instance_mountpoint:system_filesystem_avail:ratio{{{TARGET}}}",
                        "{{instance}} {{mountpoint}}",
                    ),
                    max=1,
                ),
            ],
        ),
    ],
)
