"""Shared pieces of the benchmarks: start exporters on loopback, scrape them the way
Prometheus does, and read CPU (the kernel's CPU-time clocks, in nanoseconds) and memory (from
/proc) of their process trees.

Figures are always printed side by side with a peer measured in the same run, in interleaved
rounds, so that machine noise hits both alike: read the ratios, not a lone absolute time.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def wait_for_port(
    port: int,
    timeout: float = 20.0,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Until 127.0.0.1:`port` accepts a connection; fail early if `proc` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    see = f", see {log}" if log is not None else ""
    if proc is not None and proc.returncode is not None:
        raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}{see}")
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s{see}")


def wait_http(url: str, timeout: float = 20.0) -> None:
    """Until `url` answers with a status below 500."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate `proc`, and kill it if it has not exited after `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


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


def process_cpu_ns(pid: int) -> int:
    """CPU nanoseconds of one process so far, all its threads, exited ones included.

    Its CPU-time clock (clock_getcpuclockid: the sum of the threads' schedstat run times plus
    those of threads that have exited); where the kernel refuses it, the schedstat run times of
    the threads alive now. /proc's utime+stime count 10 ms ticks, coarser than a whole round of
    some peers' work."""
    with contextlib.suppress(OSError):
        return time.clock_gettime_ns(((~pid) << 3) | 2)  # CPUCLOCK_SCHED of process `pid`
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the process tree so far, in nanoseconds' precision (process_cpu_ns of
    each member): the one CPU reader of the benchmarks."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            total += process_cpu_ns(member)
    return total / 1e9


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
    series: int = 0  # samples in the last decoded scrape (Scraper(..., decode=True))

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
    *,
    log_prefix: str = "bench",
    log_dir: Path | None = None,
    timeout: float = 20.0,
    cwd: Path = ROOT,
) -> Iterator[Server]:
    """Run `args` in `cwd` (output to <log_dir or temp dir>/<log_prefix>-<name>-<port>.log,
    `env` added to ours) until the block ends; yield its Server once `port` accepts
    connections. `python -m exporter` runs the source tree it is started in."""
    log = (log_dir or Path(tempfile.gettempdir())) / f"{log_prefix}-{name}-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        try:
            wait_for_port(port, timeout, proc, log)
            yield Server(name, port, path, proc)
        finally:
            stop(proc)


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


def count_series(body: bytes) -> int:
    """Samples in an exposition: the lines that are neither empty nor comments."""
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


class Scraper:
    """One keep-alive connection that scrapes like Prometheus.

    With `decode`, each scrape also gunzips the body and counts its samples into
    `server.series` (that work is then part of the measured latency).
    """

    def __init__(self, server: Server, decode: bool = False) -> None:
        self.server = server
        self.decode = decode
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def scrape(self) -> int:
        self.conn.request("GET", self.server.path, headers=PROMETHEUS_HEADERS)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{self.server.name}: HTTP {response.status}")
        if self.decode:
            text = body
            if response.getheader("Content-Encoding") == "gzip":
                text = gzip.decompress(body)
            self.server.series = count_series(text)
        return len(body)

    def close(self) -> None:
        self.conn.close()


def measure_round(server: Server, scrapes: int, decode: bool = False) -> None:
    """Sequential scrapes: latency of each, CPU of the whole round."""
    scraper = Scraper(server, decode)
    scraper.scrape()  # warm the connection
    before = cpu_seconds(server.pid)
    for _ in range(scrapes):
        started_at = time.perf_counter()
        server.body_bytes = scraper.scrape()
        server.latencies.append(time.perf_counter() - started_at)
    server.cpu.append((cpu_seconds(server.pid) - before) / scrapes)
    scraper.close()


def measure_throughput(server: Server, clients: int, seconds: float) -> None:
    """Scrapes per second with `clients` concurrent keep-alive connections (wrk if present)."""
    wrk = shutil.which("wrk")
    if wrk:
        header_args = [a for k, v in PROMETHEUS_HEADERS.items() for a in ("-H", f"{k}: {v}")]
        out = subprocess.run(
            [
                wrk,
                f"-c{clients}",
                f"-t{min(clients, 2)}",
                f"-d{seconds:g}s",
                *header_args,
                f"http://127.0.0.1:{server.port}{server.path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors:
            raise RuntimeError(f"{server.name}: {errors.group(1)} failed scrapes under load")
        rate = next(
            float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec:")
        )
        server.throughput.setdefault(clients, []).append(rate)
        return
    done = [0] * clients
    until = time.monotonic() + seconds

    def worker(index: int) -> None:
        scraper = Scraper(server)
        while time.monotonic() < until:
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
