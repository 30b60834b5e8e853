"""Where the exporter's memory goes: RSS by kind of mapping and thread, at start and after scrapes.

    python -m benchmarks.memory [--scrapes 300] [--instances 2] [--baseline DIR]
    python -m benchmarks.memory --imports [--raw]

(as a module: run as a script, benchmarks/redis.py would shadow redis-py)

Starts the private sources of benchmarks/full_stack.py (a filled redis-server, a PostgreSQL
with ten tables, the vLLM stand-in), then `--instances` copies of our exporter per config
(`redis`: the Redis collector alone, `full`: host + process + Redis + PostgreSQL + the model
server, `empty`: no collector), from this tree and from `--baseline DIR` too
(`git archive main | tar -x -C DIR`), plus the four Go peers of benchmarks/full_stack.py.
All are scraped with Prometheus's headers, in interleaved chunks, until each has served
`--scrapes`. Printed per exporter: RSS at start, after the first scrape and at the end; the end
RSS split into anonymous memory (the Python heap: brk heap, pymalloc arenas, mmaps) and file
pages (libpython, libcrypto, extension modules); private vs shared (smaps_rollup); threads
with their names. Memory does not vary much between runs, but two instances show the spread.

`--imports` prints, in a fresh interpreter, RSS and private memory after each import step of
the standalone start-up, in the order the exporter imports them, so a step's cost is what it
adds on top of what came before (`--raw`: without the standalone start's deferrals).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.harness import Server

CONFIGS = ("redis", "full", "empty")
CHUNK = 50
#: Import steps of a standalone start with the Redis collector, in the exporter's order, then
#: what the full stack adds.
STEPS = (
    "exporter",
    "asyncio",
    "prometheus_client.metrics_core",
    "collectors.catalog",
    "yaml",
    "exporter.config",
    "exporter.state",
    "exporter.cli",
    "redis.connection",
    "collectors.redis",
    "uvicorn.config",
    "uvicorn.server",
    "starlette.applications",
    "exporter.app",
    "exporter.server",
    "uvloop",
    # the rest of the full stack
    "psutil",
    "collectors.system",
    "collectors.process",
    "sqlalchemy",
    "psycopg",
    "collectors.database",
    "httpx",
    "collectors.model_servers",
)


def rollup(pid: int) -> dict[str, int]:
    """smaps_rollup in kB, plus Threads and the thread names from /proc."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                values[key] = int(rest.split()[0])
    return values


def by_mapping(pid: int) -> collections.Counter[str]:
    """RSS in kB per kind of mapping: [heap], anonymous, and each file's base name."""
    rss: collections.Counter[str] = collections.Counter()
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split()
            name = parts[5].rsplit("/", 1)[-1] if len(parts) > 5 else "[anonymous]"
        elif line.startswith("Rss:"):
            rss[name] += int(line.split()[1])
    return rss


def threads(pid: int) -> collections.Counter[str]:
    names: collections.Counter[str] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            names[(task / "comm").read_text().strip()] += 1
    return names


@dataclass
class Sample:
    server: Server
    at_start: dict[str, int] = field(default_factory=dict)
    after_one: dict[str, int] = field(default_factory=dict)
    at_end: dict[str, int] = field(default_factory=dict)
    done: int = 0


def scrape(sample: Sample, count: int) -> None:
    from benchmarks.harness import Scraper

    scraper = Scraper(sample.server)
    for _ in range(count):
        scraper.scrape()
    scraper.close()
    sample.done += count


def run(options: argparse.Namespace) -> list[Sample]:
    # here, not at the top: `--imports` must start from an interpreter that imported nothing
    import shutil
    import tempfile

    from benchmarks.full_stack import configs, exporter_args, peers, private_sources
    from benchmarks.harness import ROOT, free_port, started, wait_http

    trees = [("", ROOT)]
    if options.baseline is not None:
        trees.append(("base ", options.baseline.resolve()))
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    samples: list[Sample] = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        sources = stack.enter_context(private_sources(work))
        paths = configs(sources, work)
        for instance in range(options.instances):
            for prefix, tree in trees:
                for name in CONFIGS:
                    port = free_port()
                    args, env = exporter_args(tree, port, paths[name])
                    label = f"{prefix}{name} #{instance + 1}"
                    server = stack.enter_context(
                        started(label, args, port, env=env, log_prefix="bench-memory",
                                log_dir=work, cwd=tree)
                    )  # fmt: skip
                    samples.append(Sample(server))
        for name, argv, path, env in peers(sources, work):
            port = free_port()
            args = [argv[0], f"--web.listen-address=127.0.0.1:{port}", *argv[1:]]
            server = stack.enter_context(
                started(name, args, port, path, env=env, log_prefix="bench-memory", log_dir=work)
            )
            samples.append(Sample(server))
        for sample in samples:
            wait_http(f"http://127.0.0.1:{sample.server.port}/-/healthy")
            sample.at_start = rollup(sample.server.pid)
        for sample in samples:
            scrape(sample, 1)
            sample.after_one = rollup(sample.server.pid)
        while any(s.done < options.scrapes for s in samples):
            for sample in samples:
                scrape(sample, min(CHUNK, options.scrapes - sample.done))
        for sample in samples:
            sample.at_end = rollup(sample.server.pid)
        report(samples, options)
    return samples


def mib(kb: float) -> str:
    return f"{kb / 1024:7.1f}"


def report(samples: list[Sample], options: argparse.Namespace) -> None:
    import statistics

    print(f"RSS in MiB; end = after {options.scrapes} scrapes (Prometheus headers)\n")
    print(f"{'':22}{'start':>7}{'1st':>7}{'end':>7}{'anon':>7}{'file':>7}{'priv':>7}"
          f"{'shared':>7}  threads")  # fmt: skip
    groups: dict[str, list[float]] = collections.defaultdict(list)
    for s in samples:
        end = s.at_end
        private = end.get("Private_Clean", 0) + end.get("Private_Dirty", 0)
        shared = end.get("Shared_Clean", 0) + end.get("Shared_Dirty", 0)
        names = ", ".join(f"{n} x{c}" for n, c in sorted(threads(s.server.pid).items()))
        print(f"{s.server.name:22}{mib(s.at_start['Rss'])}{mib(s.after_one['Rss'])}"
              f"{mib(end['Rss'])}{mib(end.get('Anonymous', 0))}"
              f"{mib(end['Rss'] - end.get('Anonymous', 0))}{mib(private)}{mib(shared)}"
              f"  {names}")  # fmt: skip
        groups[s.server.name.split(" #")[0]].append(end["Rss"] / 1024)
    print("\nmedian RSS after scrapes (MiB), spread over instances")
    for name, values in groups.items():
        print(f"  {name:20}{statistics.median(values):7.1f}  ({min(values):.1f}-{max(values):.1f})")
    for s in samples:
        if s.server.name.endswith("#1") and not s.server.name.startswith("base"):
            top = by_mapping(s.server.pid).most_common(8)
            print(f"\n{s.server.name}: largest mappings (RSS MiB)")
            for mapping, kb in top:
                print(f"  {mib(kb)}  {mapping}")


def step_rss() -> tuple[int, int]:
    values = rollup_self()
    return values["Rss"], values["Private_Clean"] + values["Private_Dirty"]


def rollup_self() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            values[key] = int(rest.split()[0])
    return values


def imports(raw: bool) -> None:
    """RSS after each import step, in this (fresh) interpreter; unless `raw`, with the
    standalone start's deferrals and blocks (exporter/footprint.py) in place, as cli.main
    sets them (the first step, `exporter`, then includes exporter/footprint.py)."""
    before = step_rss()
    print(f"{'step':32}{'+RSS':>8}{'+private':>10}{'modules':>9}   (MiB)")
    print(f"{'(interpreter)':32}{mib(before[0])} {mib(before[1])}{len(sys.modules):9d}")
    with contextlib.ExitStack() as stack:
        if not raw:
            from exporter import footprint

            footprint.defer_package_inits()
            stack.enter_context(footprint.unused_imports_absent())
        for step in STEPS:
            count = len(sys.modules)
            importlib.import_module(step)
            now = step_rss()
            print(f"{step:32}{mib(now[0] - before[0])} {mib(now[1] - before[1])}"
                  f"{len(sys.modules) - count:9d}")  # fmt: skip
            before = now
    print(f"{'total':32}{mib(before[0])} {mib(before[1])}{len(sys.modules):9d}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another source tree to run beside")
    parser.add_argument("--imports", action="store_true", help="RSS per import step")
    parser.add_argument("--raw", action="store_true", help="--imports without exporter/footprint")
    options = parser.parse_args()
    if options.imports:
        imports(options.raw)
    else:
        run(options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
