"""Our Redis collector beside Debian's prometheus-redis-exporter, on the same private Redis.

    python -m benchmarks.redis [--rounds 5] [--scrapes 200] [--seconds 4]

(as a module: run as a script, its own name would shadow redis-py)

Starts a private redis-server (Redis 7, persistence off) on a free loopback port, fills it with
thousands of keys over several dbs and a mix of commands, then starts `python -m exporter` (only
the redis collector: the host and process collectors are off, as node_exporter's job) and
`prometheus-redis-exporter` on loopback ports. In interleaved rounds it measures, with
Prometheus's scrape headers: sequential scrape latency (p50/p99), CPU per scrape (utime+stime
of each process tree from /proc, before/after the round), scrapes/s with 16 concurrent
connections (wrk, when installed, else a threaded client) and RSS. Prints the figures and our/their
ratios side by side.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process and its children (from /proc/<pid>/stat)."""
    total = 0.0
    proc = psutil.Process(pid)
    for p in [proc, *proc.children(recursive=True)]:
        fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def rss_bytes(pid: int) -> int:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def populate(port: int, keys: int = 8000, dbs: int = 4) -> None:
    """Thousands of keys of several types over `dbs` dbs, and a mix of commands and errors."""
    rng = random.Random(4)
    for db in range(dbs):
        client = redis.Redis(port=port, db=db)
        pipe = client.pipeline(transaction=False)
        for i in range(keys // dbs):
            kind = i % 5
            if kind == 0:
                pipe.set(f"s:{i}", "x" * rng.randint(10, 200), ex=3600 if i % 3 == 0 else None)
            elif kind == 1:
                pipe.hset(f"h:{i}", mapping={"a": i, "b": "y"})
            elif kind == 2:
                pipe.rpush(f"l:{i}", *range(5))
            elif kind == 3:
                pipe.sadd(f"set:{i}", *range(4))
            else:
                pipe.zadd(f"z:{i}", {"a": 1.0, "b": 2.0})
        pipe.execute()
        pipe = client.pipeline(transaction=False)
        for i in range(2000):
            pipe.get(f"s:{rng.randrange(keys)}")
            pipe.hget(f"h:{rng.randrange(keys)}", "a")
            pipe.incr(f"counter:{i % 50}")
            pipe.lrange(f"l:{rng.randrange(keys)}", 0, -1)
            pipe.sismember(f"set:{rng.randrange(keys)}", 1)
            pipe.zscore(f"z:{rng.randrange(keys)}", "a")
            pipe.expire(f"s:{rng.randrange(keys)}", 7200)
            pipe.exists(f"missing:{i}")
        pipe.mget([f"s:{i}" for i in range(100)])
        pipe.execute()
        for bad in (("LPUSH", "s:0", "x"), ("NOSUCHCOMMAND",), ("GET",)):
            try:
                client.execute_command(*bad)
            except redis.ResponseError:
                pass


def scrape_sequential(client: httpx.Client, url: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url, headers=HEADERS)
        response.read()
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return times


def throughput(url: str, seconds: float, connections: int = 16) -> float:
    wrk = shutil.which("wrk")
    if wrk:
        args = [wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
        for name, value in HEADERS.items():
            args += ["-H", f"{name}: {value}"]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors:
            raise SystemExit(f"{url}: {errors.group(1)} failed scrapes under load")
        assert match, out
        return float(match.group(1))
    count = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal count
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop:
                client.get(url, headers=HEADERS).read()
                with lock:
                    count += 1

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count / seconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    for binary in ("redis-server", "prometheus-redis-exporter"):
        if not shutil.which(binary):
            raise SystemExit(f"{binary} is not installed (scripts/install-tools)")

    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    redis_port, ours_port, theirs_port = free_port(), free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            subprocess.Popen(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=redis_port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        populate(redis_port)
        config = workdir / "exporter.yml"
        config.write_text(
            "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
            f"redis:\n  - name: cache\n    url: redis://127.0.0.1:{redis_port}/0\n"
        )
        ours = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config", str(config),
             "--web.listen-address", f"127.0.0.1:{ours_port}", "--log.level", "warning"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(workdir / "ours.log", "wb"),
        )  # fmt: skip
        processes.append(ours)
        theirs = subprocess.Popen(
            ["prometheus-redis-exporter", f"--redis.addr=redis://127.0.0.1:{redis_port}",
             f"--web.listen-address=127.0.0.1:{theirs_port}"],
            stdout=subprocess.DEVNULL, stderr=open(workdir / "theirs.log", "wb"),
        )  # fmt: skip
        processes.append(theirs)
        targets = {
            "ours": (ours.pid, f"http://127.0.0.1:{ours_port}/metrics"),
            "redis_exporter": (theirs.pid, f"http://127.0.0.1:{theirs_port}/metrics"),
        }
        for _, url in targets.values():
            wait_http(url)
        latencies: dict[str, list[float]] = {name: [] for name in targets}
        cpu: dict[str, list[float]] = {name: [] for name in targets}
        rates: dict[str, list[float]] = {name: [] for name in targets}
        sizes: dict[str, int] = {}
        with httpx.Client(timeout=30) as client:
            for name, (_, url) in targets.items():
                scrape_sequential(client, url, 20)  # warm up: connections, caches, JIT-less
                plain = client.get(url, headers={"Accept": "text/plain"})
                sizes[name] = sum(1 for line in plain.text.splitlines() if line[:1] != "#")
            for round_ in range(args.rounds):
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for name in order:
                    pid, url = targets[name]
                    before = cpu_seconds(pid)
                    latencies[name] += scrape_sequential(client, url, args.scrapes)
                    cpu[name].append((cpu_seconds(pid) - before) / args.scrapes)
                for name in order:
                    rates[name].append(throughput(targets[name][1], args.seconds))
        rss = {name: rss_bytes(pid) for name, (pid, _) in targets.items()}
        report(latencies, cpu, rates, rss, sizes, args)
    finally:
        for proc in reversed(processes):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(latencies, cpu, rates, rss, sizes, args) -> None:
    rows = []
    for name in latencies:
        rows.append(
            (
                name,
                statistics.median(latencies[name]) * 1e3,
                percentile(latencies[name], 0.99) * 1e3,
                statistics.median(cpu[name]) * 1e3,
                statistics.median(rates[name]),
                rss[name] / 2**20,
                sizes[name],
            )
        )
    print(
        f"{args.rounds} interleaved rounds of {args.scrapes} sequential scrapes and "
        f"{args.seconds:g}s at 16 connections each; Prometheus scrape headers (gzip)."
    )
    header = ("", "p50 ms", "p99 ms", "CPU ms/scrape", "scrapes/s @16", "RSS MiB", "samples")
    print("{:<16}{:>9}{:>9}{:>15}{:>15}{:>10}{:>9}".format(*header))
    for row in rows:
        print("{:<16}{:>9.2f}{:>9.2f}{:>15.3f}{:>15.0f}{:>10.1f}{:>9}".format(*row))
    ours, theirs = rows[0], rows[1]
    ratios = [ours[i] / theirs[i] if theirs[i] else float("nan") for i in range(1, 7)]
    ratio_row = "{:<16}{:>8.2f}x{:>8.2f}x{:>14.2f}x{:>14.2f}x{:>9.2f}x{:>8.2f}x"
    print(ratio_row.format("ours/theirs", *ratios))
    print("targets: CPU <= 1.0x, p50 <= 1.2x, scrapes/s >= 1.0x")


if __name__ == "__main__":
    raise SystemExit(main())
