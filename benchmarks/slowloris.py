"""Slowloris: 5,000 half-open connections, this exporter beside node_exporter.

    python benchmarks/slowloris.py

For each server, 5,000 connections send the start of a request and never its end. Prints how
many of them the server still holds after 1, 3, 6 and 12 s, how long it let them live (median,
max; "held" when still open at the end), its open file descriptors at the peak, and scrape
latency p50/p99 of a real scraper (a new connection per scrape, as after a keep-alive timeout)
with no attack and while the connections are held.
"""

from __future__ import annotations

import contextlib
import http.client
import resource
import selectors
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import free_port, our_exporter, percentile, started  # noqa: E402

HALF_OPEN = 5000
PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
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


def fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def attack(port: int, pid: int) -> dict[str, str]:
    figures: dict[str, str] = {}
    quiet = latencies(port, 3)
    figures["scrape p50 / p99, no attack (ms)"] = (
        f"{statistics.median(quiet) * 1e3:.1f} / {percentile(quiet, 0.99) * 1e3:.1f}"
    )
    selector = selectors.DefaultSelector()
    opened_at = time.monotonic()
    for _ in range(HALF_OPEN):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_WRITE, False)
    lifetimes: list[float] = []
    busy: list[float] = []
    peak_fds = 0
    next_scrape = time.monotonic()
    for checkpoint in CHECKPOINTS:
        while (now := time.monotonic()) - opened_at < checkpoint:
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj  # type: ignore[assignment]
                if not key.data:
                    with contextlib.suppress(OSError):
                        sock.send(PARTIAL)
                    selector.modify(sock, selectors.EVENT_READ, True)
                    continue
                with contextlib.suppress(OSError):
                    if sock.recv(4096):
                        continue
                selector.unregister(sock)
                sock.close()
                lifetimes.append(time.monotonic() - opened_at)
            if now >= next_scrape:
                busy.append(scrape_once(port))
                peak_fds = max(peak_fds, fds(pid))
                next_scrape = time.monotonic() + 0.2
        figures[f"half-open held after {checkpoint:g} s"] = str(HALF_OPEN - len(lifetimes))
    held = HALF_OPEN - len(lifetimes)
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    if lifetimes:
        figures["lifetime of closed ones, median / max (s)"] = (
            f"{statistics.median(lifetimes):.2f} / {max(lifetimes):.2f}"
        )
    figures["never closed (held at the end)"] = str(held)
    figures["server FDs at the peak"] = str(peak_fds)
    figures["scrape p50 / p99 under attack (ms)"] = (
        f"{statistics.median(busy) * 1e3:.1f} / {percentile(busy, 0.99) * 1e3:.1f}"
    )
    return figures


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    node = shutil.which("prometheus-node-exporter")
    if node is None:
        sys.exit("prometheus-node-exporter is not installed: run scripts/install-tools --peers")
    our_port, node_port = free_port(), free_port()
    node_args = [
        node,
        f"--web.listen-address=127.0.0.1:{node_port}",
        "--collector.disable-defaults",
        "--collector.loadavg",
        "--collector.meminfo",
    ]
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
