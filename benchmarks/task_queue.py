"""The task-queue collector beside rq-exporter (PyPI), on the same RQ data, in one run.

    python benchmarks/task_queue.py

Starts a private redis-server on a free loopback port and fills it with 50 queues x 4
priorities: for RQ (db 0) the usual RQ way, one queue per priority (`q07_p2`: 200 queues), 5
jobs each plus a finished and a failed entry per queue; for Celery on Redis (db 1) 50 queues
with kombu's four priority sub-queues, 5 messages per step. Then, on free loopback ports:

- ours, watching the RQ db (`/metrics`, system and process collectors off),
- rq-exporter on the same RQ db (its own venv: it pins rq<3 and redis<6; set RQ_EXPORTER to
  its executable, else one is made in the temp dir with pip),
- ours, watching the Celery db (no peer exists for Celery; shown for scale),

and scrapes each the way Prometheus does (its Accept, Accept-Encoding and scrape-timeout
headers, one keep-alive connection) in interleaved rounds. Prints p50/p99 latency, CPU per
scrape (utime+stime of the process tree from /proc, before/after each round), series, and the
ours/peer ratios.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
QUEUES, PRIORITIES, JOBS = 50, 4, 5
ROUNDS, SCRAPES = 5, 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{name} did not start, see {log}")
        time.sleep(0.05)


@contextlib.contextmanager
def started(name: str, args: Sequence[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    log = Path(tempfile.gettempdir()) / f"bench-tq-{name}-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(list(args), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, proc, name, log)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def rq_exporter_command() -> list[str]:
    """rq-exporter's executable: $RQ_EXPORTER, or a venv of its own made with pip."""
    configured = os.environ.get("RQ_EXPORTER") or shutil.which("rq-exporter")
    if configured:
        return [configured]
    venv = Path(tempfile.gettempdir()) / "afx-rq-exporter-venv"
    executable = venv / "bin" / "rq-exporter"
    if not executable.exists():
        print(f"installing rq-exporter into {venv} (it pins rq<3, redis<6) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "rq-exporter"], check=True)
    return [str(executable)]


def fill_rq(url: str) -> None:
    import redis
    from rq import Queue

    client = redis.Redis.from_url(url)
    client.flushdb()
    for q in range(QUEUES):
        for p in range(PRIORITIES):
            queue = Queue(f"q{q:02d}_p{p}", connection=client)
            for i in range(JOBS):
                queue.enqueue("tests.tq_rq_jobs.ok", i)
            # one finished and one failed entry per queue, as a worker would leave them
            now = time.time()
            client.zadd(f"rq:finished:{queue.name}", {f"done-{q}-{p}": now + 500})
            client.zadd(f"rq:failed:{queue.name}", {f"bad-{q}-{p}": now + 500})
    client.close()


def fill_celery(url: str) -> None:
    from celery import Celery

    app = Celery("afx_tq_bench", broker=url, set_as_current=False)
    with app.producer_or_acquire() as producer:
        for q in range(QUEUES):
            for step in (0, 3, 6, 9):
                for i in range(JOBS):
                    app.send_task(
                        "afx_tq.ok", args=[i], queue=f"cq{q:02d}", priority=step, producer=producer
                    )
    app.close()


@dataclass
class Side:
    name: str
    port: int
    pid: int
    latencies: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    series: int = 0


def measure_round(side: Side) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", side.port, timeout=30)

    def scrape() -> None:
        conn.request("GET", "/metrics", headers=HEADERS)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{side.name}: HTTP {response.status}")
        if response.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        side.series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))

    scrape()  # warm the connection and first-time work
    before = cpu_seconds(side.pid)
    for _ in range(SCRAPES):
        started_at = time.perf_counter()
        scrape()
        side.latencies.append(time.perf_counter() - started_at)
    side.cpu.append((cpu_seconds(side.pid) - before) / SCRAPES)
    conn.close()


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def exporter_config(directory: Path, name: str, kind: str, url: str) -> Path:
    path = directory / f"{name}.yml"
    path.write_text(
        "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
        f"task_queues:\n  - name: {name}\n    kind: {kind}\n    url: {url}\n"
        "    queue_limit: 250\n"
    )
    return path


def main() -> int:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("redis-server is not installed", file=sys.stderr)
        return 1
    peer = rq_exporter_command()
    with tempfile.TemporaryDirectory(prefix="bench-tq-") as tmp:
        directory = Path(tmp)
        redis_port = free_port()
        rq_url = f"redis://127.0.0.1:{redis_port}/0"
        celery_url = f"redis://127.0.0.1:{redis_port}/1"
        redis_args = [
            redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", tmp,
        ]  # fmt: skip
        ports = {name: free_port() for name in ("ours-rq", "rq-exporter", "ours-celery")}
        ours = [sys.executable, "-m", "exporter", "--log.level", "warning"]
        with contextlib.ExitStack() as stack:
            stack.enter_context(started("redis", redis_args, redis_port))
            fill_rq(rq_url)
            fill_celery(celery_url)
            commands = {
                "ours-rq": [
                    *ours, "--config", str(exporter_config(directory, "rq", "rq", rq_url)),
                    "--web.listen-address", f"127.0.0.1:{ports['ours-rq']}",
                ],
                "rq-exporter": [
                    *peer, "--host", "127.0.0.1", "--port", str(ports["rq-exporter"]),
                    "--redis-url", rq_url, "--log-level", "WARNING",
                ],
                "ours-celery": [
                    *ours,
                    "--config", str(exporter_config(directory, "celery", "celery", celery_url)),
                    "--web.listen-address", f"127.0.0.1:{ports['ours-celery']}",
                ],
            }  # fmt: skip
            sides = []
            for name, args in commands.items():
                proc = stack.enter_context(started(name, args, ports[name]))
                sides.append(Side(name, ports[name], proc.pid))
            for _ in range(ROUNDS):
                for side in sides:
                    measure_round(side)
    report(sides)
    return 0


def report(sides: Sequence[Side]) -> None:
    print(
        f"\n{QUEUES} queues x {PRIORITIES} priorities, {JOBS} tasks each; "
        f"{ROUNDS} interleaved rounds x {SCRAPES} scrapes per side\n"
    )
    print(f"{'side':<13}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/scrape':>15}{'series':>8}")
    stats = {}
    for side in sides:
        p50 = statistics.median(side.latencies) * 1000
        tail = p99(side.latencies) * 1000
        cpu = statistics.median(side.cpu) * 1000
        stats[side.name] = (p50, tail, cpu)
        print(f"{side.name:<13}{p50:>9.2f}{tail:>9.2f}{cpu:>15.2f}{side.series:>8}")
    ours, peer = stats["ours-rq"], stats["rq-exporter"]
    print(
        f"\nratio ours/rq-exporter on the same RQ data: p50 {ours[0] / peer[0]:.2f}x, "
        f"p99 {ours[1] / peer[1]:.2f}x, CPU {ours[2] / max(peer[2], 1e-9):.2f}x"
    )


if __name__ == "__main__":
    raise SystemExit(main())
