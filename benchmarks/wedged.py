"""Threads and file descriptors of the exporter over 200 scrapes with wedged sources.

    python benchmarks/wedged.py [--scrapes 200] [--drip forever|stall] [--baseline DIR]

A Redis target points at a loopback listener that accepts and never answers (a network that
silently drops packets); a model server drips its answer one byte every 0.1 s, so no per-read
timeout ever fires (`forever`: a header that never ends; `stall`: all but the last byte, then
silence, so a request ends after about 9 s). The system collector runs beside them. Scrapes
come every 0.5 s, as from a Prometheus with `scrape_interval` and `scrape_timeout` 0.5 s.
Halfway, the model server heals (new connections are answered at once; the dripping ones keep
dripping). Printed per exporter: answers by HTTP status, in how many scrapes the system
collector answered, the model server's scrapes up before and after it healed and how long
after healing it was first up, and the process's thread and FD counts at the start, at most
and at the end. `--baseline DIR` runs another source tree of the exporter (e.g.
`git archive main | tar -x -C DIR`) the same way.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import ROOT, free_port, stop, wait_for_port  # noqa: E402
from tests.loopback_sources import DripServer, SilentListener  # noqa: E402

INTERVAL_SECONDS = 0.5
HEADERS = {"X-Prometheus-Scrape-Timeout-Seconds": "0.5", "Accept": "text/plain"}
SYSTEM_UP = b'afirgen_exporter_collector_success{collector="system",target="system"} 1.0'
MODEL_UP = b'afirgen_exporter_collector_success{collector="model_servers",target="llm"} 1.0'


@dataclass
class Figures:
    name: str
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    system_up: int = 0
    model_up_wedged: int = 0
    model_up_healed: int = 0
    first_up_after_heal: float | None = None
    threads: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)


def _count(pid: int, what: str) -> int:
    return len(os.listdir(f"/proc/{pid}/{what}"))


def measure(name: str, tree: Path, config: Path, scrapes: int, drip: DripServer) -> Figures:
    port = free_port()
    args = [sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}"]
    args += ["--config", str(config), "--log.level", "warning"]
    log = Path(tempfile.gettempdir()) / f"bench-wedged-{name}-{port}.log"
    figures = Figures(name)
    with log.open("w") as out:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        proc = subprocess.Popen(args, cwd=tree, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_port(port, 20, proc, log)
            url = f"http://127.0.0.1:{port}/metrics"
            start = time.monotonic()
            healed_at = 0.0
            for n in range(scrapes):
                time.sleep(max(0.0, start + n * INTERVAL_SECONDS - time.monotonic()))
                if n == scrapes // 2:
                    drip.heal()
                    healed_at = time.monotonic()
                request = urllib.request.Request(url, headers=HEADERS)
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        body = answer.read()
                        figures.statuses[str(answer.status)] += 1
                except urllib.error.HTTPError as error:
                    figures.statuses[str(error.code)] += 1
                    body = b""
                except OSError as error:
                    figures.statuses[type(error).__name__] += 1
                    body = b""
                figures.system_up += SYSTEM_UP in body
                if n < scrapes // 2:
                    figures.model_up_wedged += MODEL_UP in body
                else:
                    figures.model_up_healed += MODEL_UP in body
                    if MODEL_UP in body and figures.first_up_after_heal is None:
                        figures.first_up_after_heal = time.monotonic() - healed_at
                figures.threads.append(_count(proc.pid, "task"))
                figures.fds.append(_count(proc.pid, "fd"))
        finally:
            stop(proc)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--baseline", type=Path, help="another source tree to run beside")
    parser.add_argument("--drip", choices=["forever", "stall"], default="forever")
    options = parser.parse_args()
    results = []
    trees = [("ours", ROOT)]
    if options.baseline is not None:
        trees.append(("baseline", options.baseline.resolve()))
    for name, tree in trees:
        with (
            SilentListener() as silent,
            DripServer(0.1, ending="forever" if options.drip == "forever" else "stall") as drip,
            tempfile.TemporaryDirectory() as tmp,
        ):
            config = Path(tmp) / "wedged.yml"
            config.write_text(
                "collectors:\n  process: {enabled: false}\n"
                f"redis:\n  - name: wedged\n    url: redis://127.0.0.1:{silent.port}/0\n"
                "model_servers:\n  - name: llm\n    kind: generic\n"
                f"    url: http://127.0.0.1:{drip.port}/health\n"
            )
            results.append(measure(name, tree, config, options.scrapes, drip))
    half = options.scrapes // 2
    print(f"{options.scrapes} scrapes every {INTERVAL_SECONDS} s, 0.5 s timeout; Redis silent,")
    print(f"the model server drips ({options.drip}) for {half} scrapes, then heals\n")
    header = (
        f"{'exporter':<10} {'answers':<12} {'system up':>9} {'model up wedged':>15} "
        f"{'model up healed':>15} {'up after heal':>13} {'threads start/max/end':>22} "
        f"{'FDs start/max/end':>18}"
    )
    print(header)
    print("-" * len(header))
    for f in results:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(f.statuses.items()))
        threads = f"{f.threads[0]}/{max(f.threads)}/{f.threads[-1]}"
        fds = f"{f.fds[0]}/{max(f.fds)}/{f.fds[-1]}"
        after = "never" if f.first_up_after_heal is None else f"{f.first_up_after_heal:.1f} s"
        print(
            f"{f.name:<10} {answers:<12} {f.system_up:>9} {f.model_up_wedged:>15} "
            f"{f.model_up_healed:>15} {after:>13} {threads:>22} {fds:>18}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
