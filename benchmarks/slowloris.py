"""Slowloris: 5,000 half-open connections, this exporter beside node_exporter.

    python benchmarks/slowloris.py

For each server, 5,000 connections send the start of a request and never its end. Prints how
many of them the server still holds after 1, 3, 6 and 12 s, how long it let them live (median,
max), those never closed, its open file descriptors at the peak, and scrape
latency p50/p99 of a real scraper (a new connection per scrape, as after a keep-alive timeout)
with no attack and while the connections are held.
"""

from __future__ import annotations

import http.client
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.auth import small_node_exporter  # noqa: E402
from benchmarks.harness import free_port, our_exporter, percentile, started  # noqa: E402
from tests.slowloris import Slowloris  # noqa: E402
from tests.slowloris import open_fds as fds  # noqa: E402

HALF_OPEN = 5000
CHECKPOINTS = (1.0, 3.0, 6.0, 12.0)


def scrape_once(port: int) -> float:
    started_at = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"scrape answered {response.status}")
    return time.perf_counter() - started_at


def latencies(port: int, seconds: float) -> list[float]:
    found: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        found.append(scrape_once(port))
        time.sleep(0.05)
    return found


def attack(port: int, pid: int) -> dict[str, str]:
    figures: dict[str, str] = {}
    quiet = latencies(port, 3)
    figures["scrape p50 / p99, no attack (ms)"] = (
        f"{statistics.median(quiet) * 1e3:.1f} / {percentile(quiet, 0.99) * 1e3:.1f}"
    )
    busy: list[float] = []
    peak_fds = 0
    with Slowloris(port, HALF_OPEN, reopen=False) as held:
        started_at = time.monotonic()
        for checkpoint in CHECKPOINTS:
            while time.monotonic() - started_at < checkpoint:
                busy.append(scrape_once(port))
                peak_fds = max(peak_fds, fds(pid))
                time.sleep(0.2)
            figures[f"half-open held after {checkpoint:g} s"] = str(held.held)
        lifetimes = list(held.lifetimes)
        figures["never closed (held at the end)"] = str(held.held)
    if lifetimes:
        figures["lifetime of closed ones, median / max (s)"] = (
            f"{statistics.median(lifetimes):.2f} / {max(lifetimes):.2f}"
        )
    figures["server FDs at the peak"] = str(peak_fds)
    figures["scrape p50 / p99 under attack (ms)"] = (
        f"{statistics.median(busy) * 1e3:.1f} / {percentile(busy, 0.99) * 1e3:.1f}"
    )
    return figures


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    our_port, node_port = free_port(), free_port()
    node_args = small_node_exporter(node_port)
    rows: dict[str, dict[str, str]] = {}
    with (
        started("afirgen", our_exporter(our_port), our_port) as ours,
        started("node_exporter", node_args, node_port) as peer,
    ):
        for server in (ours, peer):
            for label, value in attack(server.port, server.pid).items():
                rows.setdefault(label, {})[server.name] = value
            time.sleep(2)
    width = max(len(label) for label in rows)
    print(f"{HALF_OPEN} half-open connections (request headers never completed)")
    print(f"{'':{width}}  {'afirgen':>16}  {'node_exporter':>16}")
    for label, values in rows.items():
        ours, theirs = values.get("afirgen", ""), values.get("node_exporter", "")
        print(f"{label:{width}}  {ours:>16}  {theirs:>16}")


if __name__ == "__main__":
    main()
