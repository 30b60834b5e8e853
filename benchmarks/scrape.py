"""The exporter core (system + process collectors, HTTP, encoding) beside node_exporter.

    python benchmarks/scrape.py        (or: make bench)

Both serve host metrics; node_exporter is limited to comparable collectors. Prints p50/p99
scrape latency, CPU per scrape, scrapes/s with 1 and 16 clients, RSS, and our/peer ratios,
measured in interleaved rounds of one run. Also the exposition rate of prometheus_client's
encoder on a large synthetic scrape (samples per second).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.metrics_core import CounterMetricFamily  # noqa: E402

from benchmarks.harness import (  # noqa: E402
    free_port,
    measure_round,
    our_exporter,
    report,
    run_side_by_side,
    started,
)
from exporter.exposition import Format, compress, encode  # noqa: E402

NODE_COLLECTORS = ["cpu", "meminfo", "loadavg", "diskstats", "netdev", "filesystem", "stat"]


def exposition_rate(samples: int = 200_000) -> None:
    family = CounterMetricFamily("bench_ops", "Synthetic.", labels=["command", "db"])
    for i in range(samples):
        family.add_metric([f"cmd{i % 500}", f"db{i // 500}"], float(i))
    for fmt in (Format.TEXT, Format.OPENMETRICS):
        started_at = time.process_time()
        body = encode([family], fmt)
        encoded = time.process_time() - started_at
        started_at = time.process_time()
        compress(body, 6)
        gz = time.process_time() - started_at
        print(
            f"exposition {fmt.name:11}: {samples / encoded / 1e6:.2f} M samples/s "
            f"(gzip level 6 adds {gz / encoded * 100:.0f}% of the encoding time)"
        )


def main() -> None:
    node = shutil.which("prometheus-node-exporter")
    if node is None:
        sys.exit("prometheus-node-exporter is not installed: run scripts/install-tools --peers")
    our_port, node_port = free_port(), free_port()
    node_args = [
        node,
        f"--web.listen-address=127.0.0.1:{node_port}",
        "--collector.disable-defaults",
    ]
    node_args += [f"--collector.{name}" for name in NODE_COLLECTORS]
    with (
        started("afirgen", our_exporter(our_port), our_port) as ours,
        started("node_exporter", node_args, node_port) as peer,
    ):
        run_side_by_side(ours, peer)
        report(ours, peer)
    empty_scrape_cpu()
    exposition_rate()


def empty_scrape_cpu() -> None:
    """CPU of a scrape with no collector at all: the fixed cost of HTTP, engine and encoding."""
    port = free_port()
    flags = ("--no-collector.system", "--no-collector.process")
    with started("empty", our_exporter(port, None, *flags), port) as empty:
        for _ in range(3):
            measure_round(empty, 300)
        print(
            f"empty scrape: {statistics.median(empty.cpu) * 1e3:.3f} ms CPU, "
            f"p50 {statistics.median(empty.latencies) * 1e3:.3f} ms"
        )


if __name__ == "__main__":
    main()
