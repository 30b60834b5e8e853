"""Shared pieces of the benchmarks: start exporters on loopback, scrape them the way
Prometheus does, and read CPU and memory of their process trees from /proc.

Figures are always printed side by side with a peer measured in the same run, in interleaved
rounds, so that machine noise hits both alike: read the ratios, not a lone absolute time.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
    "User-Agent": "Prometheus/2.42.0",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (uvicorn workers, helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process tree so far."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


@dataclass
class Server:
    name: str
    port: int
    path: str
    proc: subprocess.Popen[bytes]
    latencies: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    throughput: dict[int, list[float]] = field(default_factory=dict)
    body_bytes: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def started(
    name: str,
    args: Sequence[str],
    port: int,
    path: str = "/metrics",
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    log = open(f"/tmp/bench-{name}-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        list(args),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    try:
        wait_for_port(port)
        yield Server(name, port, path, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def our_exporter(port: int, config: Path | None = None, *flags: str) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "exporter",
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--log.level",
        "warning",
    ]
    if config is not None:
        args += ["--config", str(config)]
    return args + list(flags)


class Scraper:
    """One keep-alive connection that scrapes like Prometheus."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def scrape(self) -> int:
        self.conn.request("GET", self.server.path, headers=PROMETHEUS_HEADERS)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{self.server.name}: HTTP {response.status}")
        return len(body)

    def close(self) -> None:
        self.conn.close()


def measure_round(server: Server, scrapes: int) -> None:
    """Sequential scrapes: latency of each, CPU of the whole round."""
    scraper = Scraper(server)
    scraper.scrape()  # warm the connection
    before = cpu_seconds(server.pid)
    for _ in range(scrapes):
        started_at = time.perf_counter()
        server.body_bytes = scraper.scrape()
        server.latencies.append(time.perf_counter() - started_at)
    server.cpu.append((cpu_seconds(server.pid) - before) / scrapes)
    scraper.close()


def measure_throughput(server: Server, clients: int, seconds: int) -> None:
    """Scrapes per second with `clients` concurrent keep-alive connections (wrk if present)."""
    wrk = shutil.which("wrk")
    if wrk:
        header_args = [a for k, v in PROMETHEUS_HEADERS.items() for a in ("-H", f"{k}: {v}")]
        out = subprocess.run(
            [
                wrk,
                f"-c{clients}",
                f"-t{min(clients, 2)}",
                f"-d{int(seconds)}s",
                *header_args,
                f"http://127.0.0.1:{server.port}{server.path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rate = next(
            float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec:")
        )
        server.throughput.setdefault(clients, []).append(rate)
        return
    done = [0] * clients
    stop = time.monotonic() + seconds

    def worker(index: int) -> None:
        scraper = Scraper(server)
        while time.monotonic() < stop:
            scraper.scrape()
            done[index] += 1
        scraper.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.throughput.setdefault(clients, []).append(sum(done) / seconds)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(
    ours: Server,
    peer: Server,
    extra: Callable[[Server], dict[str, float]] | None = None,
) -> None:
    """Print both servers' figures and our/peer ratios side by side."""
    rows: list[tuple[str, float, float, str]] = [
        (
            "scrape p50 (ms)",
            statistics.median(ours.latencies) * 1e3,
            statistics.median(peer.latencies) * 1e3,
            "lower is better",
        ),
        (
            "scrape p99 (ms)",
            percentile(ours.latencies, 0.99) * 1e3,
            percentile(peer.latencies, 0.99) * 1e3,
            "lower is better",
        ),
        (
            "CPU per scrape (ms)",
            statistics.median(ours.cpu) * 1e3,
            statistics.median(peer.cpu) * 1e3,
            "lower is better",
        ),
    ]
    for clients in sorted(ours.throughput):
        rows.append(
            (
                f"scrapes/s, {clients} client(s)",
                statistics.median(ours.throughput[clients]),
                statistics.median(peer.throughput[clients]),
                "higher is better",
            )
        )
    rows.append(
        ("RSS (MiB)", rss_bytes(ours.pid) / 2**20, rss_bytes(peer.pid) / 2**20, "lower is better")
    )
    rows.append(("body bytes (gzip)", float(ours.body_bytes), float(peer.body_bytes), ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {ours.name:>14}  {peer.name:>14}  {'ratio':>7}")
    for label, mine, theirs, note in rows:
        ratio = mine / theirs if theirs else float("nan")
        print(f"{label:{width}}  {mine:14.3f}  {theirs:14.3f}  {ratio:7.2f}x  {note}")


def run_side_by_side(
    ours: Server,
    peer: Server,
    *,
    rounds: int = 5,
    scrapes: int = 100,
    clients: Sequence[int] = (1, 16),
    seconds: int = 3,
) -> None:
    for _ in range(rounds):
        for server in (ours, peer):
            measure_round(server, scrapes)
    for _ in range(2):
        for count in clients:
            for server in (ours, peer):
                measure_throughput(server, count, seconds)
