"""The task-queue collector beside rq-exporter (PyPI), on the same RQ data, in one run.

    python -m benchmarks.task_queue     (or: python benchmarks/task_queue.py)

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
scrape (the process tree's CPU clock in ns, `harness.cpu_seconds`, before/after each
round), series, and the ours/peer ratios.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# run as a script, benchmarks/ would come first on sys.path and its redis.py shadow redis-py
if sys.path[0] == str(ROOT / "benchmarks"):
    sys.path[0] = str(ROOT)
else:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import (  # noqa: E402
    Server,
    free_port,
    measure_round,
    our_exporter,
    percentile,
    started,
)

QUEUES, PRIORITIES, JOBS = 50, 4, 5
ROUNDS, SCRAPES = 5, 100
LOG = "bench-tq"  # processes' output: <temp dir>/bench-tq-<name>-<port>.log


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
        with contextlib.ExitStack() as stack:
            stack.enter_context(
                started("redis", redis_args, redis_port, log_prefix=LOG, timeout=30)
            )
            fill_rq(rq_url)
            fill_celery(celery_url)
            rq_config = exporter_config(directory, "rq", "rq", rq_url)
            celery_config = exporter_config(directory, "celery", "celery", celery_url)
            commands = {
                "ours-rq": our_exporter(ports["ours-rq"], rq_config),
                "rq-exporter": [
                    *peer, "--host", "127.0.0.1", "--port", str(ports["rq-exporter"]),
                    "--redis-url", rq_url, "--log-level", "WARNING",
                ],
                "ours-celery": our_exporter(ports["ours-celery"], celery_config),
            }  # fmt: skip
            sides = [
                stack.enter_context(started(name, args, ports[name], log_prefix=LOG, timeout=30))
                for name, args in commands.items()
            ]
            for _ in range(ROUNDS):
                for side in sides:
                    measure_round(side, SCRAPES, decode=True)
    report(sides)
    return 0


def report(sides: Sequence[Server]) -> None:
    print(
        f"\n{QUEUES} queues x {PRIORITIES} priorities, {JOBS} tasks each; "
        f"{ROUNDS} interleaved rounds x {SCRAPES} scrapes per side\n"
    )
    print(f"{'side':<13}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/scrape':>15}{'series':>8}")
    stats = {}
    for side in sides:
        p50 = statistics.median(side.latencies) * 1000
        tail = percentile(side.latencies, 0.99) * 1000
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
