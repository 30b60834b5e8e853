"""`check-config` on big configs: wall time and peak RSS of the real command.

    python benchmarks/check_config.py

Writes configs of 1,000 and 10,000 model servers (plus 100 Redis and 100 databases) and runs
`afirgen-exporter check-config` on each, three times, printing the median wall time and the
peak RSS of the process. Validation builds no client, so both should grow linearly and stay
light; compare the two sizes (time per target) rather than the absolute figures.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from benchmarks.harness import ROOT  # noqa: E402


def config(model_servers: int) -> dict[str, object]:
    return {
        "model_servers": [
            {"name": f"m{i}", "url": f"http://127.0.0.1:{1 + i % 60000}", "kind": "vllm"}
            for i in range(model_servers)
        ],
        "redis": [{"name": f"r{i}", "url": f"redis://127.0.0.1:{1 + i}"} for i in range(100)],
        "databases": [
            {"name": f"d{i}", "url": "postgresql+psycopg://app@127.0.0.1:1/app"} for i in range(100)
        ],
    }


def run_once(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"check-config failed: {proc.stderr.read().decode()[:500]}")  # type: ignore[union-attr]
    return elapsed, usage.ru_maxrss * 1024


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        heads = ("model servers", "wall (s)", "per target (ms)", "peak RSS (MiB)")
        print("  ".join(f"{head:>15}" for head in heads))
        for count in (1_000, 10_000):
            path = Path(tmp) / f"{count}.yml"
            path.write_text(yaml.safe_dump(config(count)))
            runs = [run_once(path) for _ in range(3)]
            wall = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            print(
                f"{count:>14}  {wall:9.2f}  {wall / (count + 200) * 1e3:15.3f}  {rss / 2**20:14.1f}"
            )


if __name__ == "__main__":
    main()
