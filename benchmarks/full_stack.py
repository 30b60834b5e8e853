"""The whole stack in one exporter beside each source alone and the four Go peers, in one run.

    python -m benchmarks.full_stack [--rounds 6] [--scrapes 100] [--baseline DIR]

(as a module: run as a script, benchmarks/redis.py would shadow redis-py)

Starts private sources on free loopback ports: a redis-server (persistence off, filled like
benchmarks/redis.py), a PostgreSQL 15 (tests/db_servers.py, ten tables of 100 rows) and a
vLLM-shaped stand-in serving its model, whose metrics page names it as a real vLLM's does
(tests/model_server_apps.py, in its own uvicorn process). Then, also on
loopback ports:
- ours: `full` (host + process + Redis + PostgreSQL + the model server, the deployment the
  backend runs), each source alone (`host`, `redis`, `postgres`, `model`: the host and
  process collectors off but for `host`) and `empty` (no collector at all);
- the Go peers: node_exporter (the collectors of benchmarks/scrape.py), redis_exporter,
  postgres_exporter (defaults) and blackbox_exporter probing the stand-in's `/health`.
`--baseline DIR` runs every one of ours from another source tree too (`git archive main |
tar -x -C DIR`), so before and after are compared in one run.

Rounds interleave every exporter (the order rotates each round); each round is `--scrapes`
sequential scrapes on one keep-alive connection with Prometheus's headers (OpenMetrics, gzip).
Printed: load average before and after, then per exporter the median p50 latency, CPU per
scrape (harness.cpu_seconds, in nanoseconds: the process tree over each round, median of
rounds), RSS once 300 scrapes are done, samples per scrape (text format) and CPU per sample;
then the issue's table and each target's ratio. Compare ratios of one run, never absolute times
across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from benchmarks.database import fill, peer_dsn
from benchmarks.harness import (
    ROOT,
    Scraper,
    Server,
    count_series,
    cpu_seconds,
    free_port,
    our_exporter,
    rss_bytes,
    started,
    wait_http,
)
from benchmarks.redis import populate
from benchmarks.scrape import NODE_COLLECTORS
from tests.db_servers import private_postgres

#: RSS is read once every exporter has served this many scrapes (the issue's figure).
RSS_AFTER = 300
LOG = "bench-full"
STAND_IN = textwrap.dedent(
    """
    import sys
    import uvicorn
    from tests.engine_pages import Traffic
    from tests.model_server_apps import Behaviour, make_app

    # a vLLM serving its model: its page names it (vLLM labels every series with model_name
    # from the engine's start), so the preset asks /health and the page, not /v1/models too
    traffic = Traffic()
    traffic.serve("fir-summarizer", 120, failure=3)
    uvicorn.run(make_app("vllm", Behaviour(traffic=traffic)), host="127.0.0.1",
                port=int(sys.argv[1]), log_level="warning", access_log=False)
    """
)
BLACKBOX = textwrap.dedent(
    """
    modules:
      http_2xx:
        prober: http
        timeout: 10s
        http: {valid_status_codes: [200], preferred_ip_protocol: ip4}
    """
)
GO_PEERS = ("node_exporter", "redis_exporter", "postgres_exporter", "blackbox_exporter")
SINGLES = ("host", "redis", "postgres", "model")
OFF = "  system: {enabled: false}\n  process: {enabled: false}\n"


@dataclass
class Sources:
    redis_url: str
    pg_url: str
    model_url: str


@dataclass
class Contender:
    server: Server
    samples: int = 0
    rss: int = 0
    done: int = 0
    figures: dict[str, float] = field(default_factory=dict)
    #: p50 of each round (the spread printed beside the median)
    round_p50: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.server.name

    def p50(self) -> float:
        return statistics.median(self.server.latencies)

    def cpu(self) -> float:
        return statistics.median(self.server.cpu)

    def spread(self) -> str:
        """Lowest-highest round of p50 and of CPU, in ms."""
        p50, cpu = self.round_p50 or [math.nan], self.server.cpu or [math.nan]
        return (
            f"{min(p50) * 1e3:.1f}-{max(p50) * 1e3:.1f} / {min(cpu) * 1e3:.2f}-{max(cpu) * 1e3:.2f}"
        )


def configs(sources: Sources, directory: Path) -> dict[str, Path]:
    """Our exporter's configs: the full stack, each source alone, nothing at all."""
    redis_part = f"redis:\n  - name: cache\n    url: {sources.redis_url}\n"
    pg_part = f"databases:\n  - name: main\n    url: {sources.pg_url}\n"
    model_part = (
        "model_servers:\n  - name: llm\n    kind: vllm\n"
        f"    url: {sources.model_url}\n    models: [fir-summarizer]\n"
    )
    texts = {
        "full": redis_part + pg_part + model_part,
        "host": "",
        "redis": "collectors:\n" + OFF + redis_part,
        "postgres": "collectors:\n" + OFF + pg_part,
        "model": "collectors:\n" + OFF + model_part,
        "empty": "collectors:\n" + OFF,
    }
    paths = {}
    for name, body in texts.items():
        path = directory / f"{name}.yml"
        path.write_text(body or "collectors: {}\n")
        paths[name] = path
    return paths


def exporter_args(tree: Path, port: int, config: Path) -> tuple[list[str], dict[str, str]]:
    args = our_exporter(port, config)
    return args, {"PYTHONPATH": str(tree)}


@contextlib.contextmanager
def private_sources(work: Path) -> Iterator[Sources]:
    """A filled redis-server, a PostgreSQL with ten tables and the vLLM stand-in."""
    redis_port, model_port = free_port(), free_port()
    redis_args = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                  "--save", "", "--appendonly", "no", "--dir", str(work)]  # fmt: skip
    (work / "stand_in.py").write_text(STAND_IN)
    stand_in = [sys.executable, str(work / "stand_in.py"), str(model_port)]
    with (
        started("redis", redis_args, redis_port, log_dir=work, timeout=10),
        private_postgres() as pg_url,
        started("stand-in", stand_in, model_port, log_dir=work, env={"PYTHONPATH": str(ROOT)}),
    ):
        redis.Redis(port=redis_port).ping()
        random.seed(4)
        populate(redis_port)
        fill(pg_url)
        model_url = f"http://127.0.0.1:{model_port}"
        wait_http(f"{model_url}/health")
        yield Sources(f"redis://127.0.0.1:{redis_port}/0", pg_url, model_url)


def peers(sources: Sources, work: Path) -> list[tuple[str, list[str], str, dict[str, str]]]:
    """(name, argv with PORT for the port, path, env) of the four Go exporters."""
    (work / "blackbox.yml").write_text(BLACKBOX)
    health = f"{sources.model_url}/health"
    return [
        ("node_exporter", ["prometheus-node-exporter", "--collector.disable-defaults",
                           *(f"--collector.{c}" for c in NODE_COLLECTORS)], "/metrics", {}),
        ("redis_exporter", ["prometheus-redis-exporter",
                            f"--redis.addr={sources.redis_url.removesuffix('/0')}"],
         "/metrics", {}),
        ("postgres_exporter", ["prometheus-postgres-exporter"], "/metrics",
         {"DATA_SOURCE_NAME": peer_dsn(sources.pg_url, "postgresql")}),
        ("blackbox_exporter", ["prometheus-blackbox-exporter",
                               f"--config.file={work / 'blackbox.yml'}", "--log.level=warn"],
         f"/probe?module=http_2xx&target={health}", {}),
    ]  # fmt: skip


def measure_round(server: Server, scrapes: int) -> None:
    """Sequential scrapes on one connection: latency of each, CPU of the whole round."""
    scraper = Scraper(server)
    scraper.scrape()
    before = cpu_seconds(server.pid)
    for _ in range(scrapes):
        started_at = time.perf_counter()
        scraper.scrape()
        server.latencies.append(time.perf_counter() - started_at)
    server.cpu.append((cpu_seconds(server.pid) - before) / scrapes)
    scraper.close()


def text_samples(server: Server) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{server.path}", headers={"Accept": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return count_series(answer.read())


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(options: argparse.Namespace) -> dict[str, Contender]:
    missing = [b for b in ("redis-server", "prometheus-node-exporter", "prometheus-redis-exporter",
                           "prometheus-postgres-exporter", "prometheus-blackbox-exporter")
               if not shutil.which(b)]  # fmt: skip
    if missing:
        raise SystemExit(f"not installed: {', '.join(missing)} (scripts/install-tools --peers)")
    trees = [("", ROOT)]
    if options.baseline is not None:
        trees.append(("base ", options.baseline.resolve()))
    work = Path(tempfile.mkdtemp(prefix="bench-full-"))
    try:
        with private_sources(work) as sources, contextlib.ExitStack() as stack:
            paths = configs(sources, work)
            contenders: dict[str, Contender] = {}
            for prefix, tree in trees:
                names = list(paths)
                for name in names:
                    port = free_port()
                    args, env = exporter_args(tree, port, paths[name])
                    server = stack.enter_context(
                        started(
                            prefix + name, args, port, env=env, log_prefix=LOG, log_dir=work,
                            cwd=tree,
                        )
                    )  # fmt: skip
                    contenders[server.name] = Contender(server)
            for name, argv, path, env in peers(sources, work):
                port = free_port()
                args = [argv[0], f"--web.listen-address=127.0.0.1:{port}", *argv[1:]]
                server = stack.enter_context(
                    started(name, args, port, path, env=env, log_prefix=LOG, log_dir=work)
                )
                contenders[name] = Contender(server)
            measure(list(contenders.values()), options)
            return contenders
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(contenders: list[Contender], options: argparse.Namespace) -> None:
    for contender in contenders:  # warm up: connections, imports, caches
        wait_http(f"http://127.0.0.1:{contender.server.port}{contender.server.path}")
        scraper = Scraper(contender.server)
        for _ in range(20):
            scraper.scrape()
        scraper.close()
        contender.samples = text_samples(contender.server)
    for round_ in range(options.rounds):
        shift = round_ % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            before = len(contender.server.latencies)
            measure_round(contender.server, options.scrapes)
            contender.round_p50.append(statistics.median(contender.server.latencies[before:]))
            contender.done += options.scrapes
            if not contender.rss and contender.done >= RSS_AFTER:
                contender.rss = rss_bytes(contender.server.pid)
    for contender in contenders:
        contender.rss = contender.rss or rss_bytes(contender.server.pid)


def report(contenders: dict[str, Contender], options: argparse.Namespace, load: str) -> None:
    print(
        f"{options.rounds} interleaved rounds of {options.scrapes} sequential scrapes per "
        f"exporter; Prometheus headers (OpenMetrics, gzip). load average before: {load}, "
        f"after: {load_average()}\n"
    )
    print(f"{'':22}{'p50 ms':>9}{'CPU ms/scrape':>15}{'RSS MiB':>9}{'samples':>9}", end="")
    print(f"{'CPU us/sample':>15}  rounds: p50 / CPU ms, lowest-highest")
    for c in contenders.values():
        per_sample = c.cpu() / c.samples * 1e6 if c.samples else float("nan")
        print(
            f"{c.name:22}{c.p50() * 1e3:9.2f}{c.cpu() * 1e3:15.3f}{c.rss / 2**20:9.1f}"
            f"{c.samples:9d}{per_sample:15.2f}  {c.spread()}"
        )
    for prefix in ("", "base "):
        if prefix + "full" in contenders:
            print()
            targets(contenders, prefix)


def targets(contenders: dict[str, Contender], prefix: str) -> None:
    """The issue's table and its targets, for our tree (prefix '') or the baseline."""
    c = {name.removeprefix(prefix): x for name, x in contenders.items() if name.startswith(prefix)}
    go = {name: contenders[name] for name in GO_PEERS}
    full = c["full"]
    # the slowest source alone as this tree runs it (which source is slowest is decided by
    # ours, so both trees are held to the same one)
    slowest_name = max(SINGLES, key=lambda name: contenders[name].p50())
    slowest = c.get(slowest_name, contenders[slowest_name])
    go_cpu = sum(x.cpu() for x in go.values())
    go_rss = [x.rss / 2**20 for x in go.values()]
    title = "baseline tree" if prefix else "this tree"
    print(f"{title}: sequential scrape")
    print(f"{'':24}{'full stack':>14}{'slowest alone (' + slowest.name.strip() + ')':>32}"
          f"{'four Go peers':>18}")  # fmt: skip
    print(f"{'p50 ms':24}{full.p50() * 1e3:14.2f}{slowest.p50() * 1e3:32.2f}{'-':>18}")
    print(f"{'CPU ms per scrape':24}{full.cpu() * 1e3:14.2f}{slowest.cpu() * 1e3:32.2f}"
          f"{go_cpu * 1e3:18.2f}")  # fmt: skip
    rss_go = " / ".join(f"{r:.0f}" for r in go_rss)
    print(f"{f'RSS MiB ({RSS_AFTER} scrapes)':24}{full.rss / 2**20:14.1f}"
          f"{slowest.rss / 2**20:32.1f}{rss_go:>18}")  # fmt: skip

    def per_sample(x: Contender) -> float:
        return x.cpu() / x.samples if x.samples else float("nan")

    rows = [
        ("full p50 / slowest p50", full.p50() / slowest.p50(), "<= 1.30"),
        ("full CPU / Go peers' CPU", full.cpu() / go_cpu, "<= 0.50"),
        ("full RSS MiB", full.rss / 2**20, "<= 60"),
    ]
    if "redis" in c:
        redis_ours, redis_go = c["redis"], go["redis_exporter"]
        rows += [
            ("redis-only RSS MiB", redis_ours.rss / 2**20, "<= 45"),
            ("redis us/sample ratio", per_sample(redis_ours) / per_sample(redis_go), "<= 2.00"),
            ("redis-only CPU ratio", redis_ours.cpu() / redis_go.cpu(), "<= 1.00"),
            ("redis-only p50 ratio", redis_ours.p50() / redis_go.p50(), "<= 1.20"),
        ]
    if "postgres" in c:
        pg_ours, pg_go = c["postgres"], go["postgres_exporter"]
        rows.append(
            ("postgres us/sample ratio", per_sample(pg_ours) / per_sample(pg_go), "<= 2.00")
        )
    if "empty" in c:
        rows.append(("empty scrape CPU ms", c["empty"].cpu() * 1e3, "<= 0.30"))
    print(f"\n{'target':28}{'value':>10}  {'wanted':<8} met")
    for label, value, wanted in rows:
        met = value <= float(wanted.split()[1])
        print(f"{label:28}{value:10.2f}  {wanted:<8} {'yes' if met else 'NO'}")
    for name in ("redis", "postgres"):
        if name in c:
            peer = go[f"{name}_exporter"]
            print(f"{name} per sample: ours {per_sample(c[name]) * 1e6:.2f} us "
                  f"({c[name].samples} samples), {peer.name} {per_sample(peer) * 1e6:.2f} us "
                  f"({peer.samples} samples)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--scrapes", type=int, default=100)
    parser.add_argument("--baseline", type=Path, help="another source tree to run beside")
    options = parser.parse_args()
    load = load_average()
    contenders = run(options)
    report(contenders, options, load)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
