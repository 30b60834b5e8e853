"""Probe one loopback health endpoint through our /probe and through Debian's blackbox_exporter.

Both probe the same endpoint (a uvicorn app in its own process answering `{"status": "UP"}`):
our exporter with a `generic` target checking the JSON field, blackbox_exporter with an `http`
module checking the status code and the body by regexp. Rounds interleave the two; every
request carries Prometheus's headers. Printed: latency p50/p99 per probe as Prometheus sees it,
CPU per probe of each exporter process (utime+stime from /proc, children included), and the
ratios ours/blackbox. A third row (not in the ratios) probes a vLLM-shaped endpoint with our
`vllm` preset, which makes three requests per probe.

Run: python benchmarks/model_servers.py [--rounds 10] [--per-round 200]

`--build-targets N` instead measures what loading a config of N model servers and building
their collectors costs (what `check-config` and a reload pay): time and RSS growth of a fresh
process, and the httpx clients and open files that exist afterwards (there should be none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (  # noqa: E402
    PROMETHEUS_HEADERS,
    ROOT,
    cpu_seconds,
    free_port,
    our_exporter,
    percentile,
    started,
    wait_http,
)

ENDPOINT_APP = textwrap.dedent(
    """
    import sys
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def healthz(request):
        return JSONResponse({"status": "UP"})

    async def health(request):
        return Response(status_code=200)

    async def models(request):
        return JSONResponse({"object": "list", "data": [{"id": "fir-summarizer"}]})

    async def version(request):
        return JSONResponse({"version": "0.6.4"})

    app = Starlette(routes=[
        Route("/healthz", healthz), Route("/health", health),
        Route("/v1/models", models), Route("/version", version),
    ])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
    """
)


class Contender:
    def __init__(self, name: str, pid: int, url: str, params: dict[str, str]) -> None:
        self.name = name
        self.pid = pid
        self.url = url
        self.params = params
        self.latencies: list[float] = []
        self.cpu = 0.0
        self.probes = 0
        self.client = httpx.Client(headers=PROMETHEUS_HEADERS, timeout=15)

    def round(self, n: int) -> None:
        before = cpu_seconds(self.pid)
        for _ in range(n):
            started = time.perf_counter()
            answer = self.client.get(self.url, params=self.params)
            self.latencies.append(time.perf_counter() - started)
            if answer.status_code != 200 or b"probe_success 1" not in answer.content:
                raise SystemExit(f"{self.name}: probe failed: {answer.status_code}")
        self.cpu += cpu_seconds(self.pid) - before
        self.probes += n

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


BUILD_COST = textwrap.dedent(
    """
    import gc, json, os, sys, time
    import httpx
    from exporter.config import load_config
    from exporter.units import build_units
    import collectors.model_servers  # the imports are not what is measured
    from collectors.model_servers import PRESETS

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    n = int(sys.argv[1])
    kinds = list(PRESETS)
    data = {"collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "model_servers": [{"name": f"m{i}", "kind": kinds[i % len(kinds)],
                               "url": f"https://127.0.0.1:{1 + i % 60000}"} for i in range(n)]}
    gc.collect()
    rss0, fds0, t0 = rss(), len(os.listdir("/proc/self/fd")), time.perf_counter()
    config = load_config(data, env={})
    t1 = time.perf_counter()
    units = build_units(config)
    t2 = time.perf_counter()
    clients = sum(isinstance(o, httpx.Client) for o in gc.get_objects())
    print(json.dumps({"load": t1 - t0, "build": t2 - t1, "rss": rss() - rss0, "units": len(units),
                      "fds": len(os.listdir("/proc/self/fd")) - fds0, "clients": clients}))
    """
)


def build_cost(targets: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", BUILD_COST, str(targets)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    cost = json.loads(out.stdout)
    print(
        f"{targets} model servers: load_config {cost['load']:.2f} s, build {cost['build']:.2f} s, "
        f"RSS +{cost['rss'] / 2**20:.1f} MiB, httpx clients {cost['clients']}, "
        f"open files +{cost['fds']}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--build-targets", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.build_targets:
        return build_cost(args.build_targets)
    blackbox = shutil.which("prometheus-blackbox-exporter")
    if blackbox is None:
        raise SystemExit("prometheus-blackbox-exporter is not installed (scripts/install-tools)")
    work = Path(tempfile.mkdtemp(prefix="bench-model-servers-"))
    try:
        with contextlib.ExitStack() as stack:

            def start(name: str, argv: list[str], port: int) -> int:
                """Run `argv` until the end (output in `work`); its pid once `port` listens."""
                return stack.enter_context(started(name, argv, port, log_dir=work)).pid

            endpoint_port = free_port()
            (work / "endpoint.py").write_text(ENDPOINT_APP)
            endpoint_args = [sys.executable, str(work / "endpoint.py"), str(endpoint_port)]
            start("endpoint", endpoint_args, endpoint_port)
            endpoint = f"http://127.0.0.1:{endpoint_port}"
            wait_http(f"{endpoint}/healthz")

            ours_port = free_port()
            (work / "exporter.yml").write_text(
                textwrap.dedent(
                    f"""
                    collectors: {{system: {{enabled: false}}, process: {{enabled: false}}}}
                    model_servers:
                      - name: bench
                        url: {endpoint}/healthz
                        json_field: status
                        json_equals: UP
                      - name: bench-vllm
                        kind: vllm
                        url: {endpoint}
                        models: [fir-summarizer]
                    """
                )
            )
            ours = start("exporter", our_exporter(ours_port, work / "exporter.yml"), ours_port)
            bb_port = free_port()
            (work / "blackbox.yml").write_text(
                textwrap.dedent(
                    """
                    modules:
                      http_json:
                        prober: http
                        timeout: 10s
                        http:
                          valid_status_codes: [200]
                          preferred_ip_protocol: ip4
                          fail_if_body_not_matches_regexp: ['"status":\\s*"UP"']
                    """
                )
            )
            bb_args = [
                blackbox,
                f"--config.file={work / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{bb_port}",
                "--log.level=warn",
            ]
            bb = start("blackbox", bb_args, bb_port)
            wait_http(f"http://127.0.0.1:{ours_port}/-/healthy")
            wait_http(f"http://127.0.0.1:{bb_port}/-/healthy")

            contenders = [
                Contender(
                    "afirgen /probe generic",
                    ours,
                    f"http://127.0.0.1:{ours_port}/probe",
                    {"target": "bench"},
                ),
                Contender(
                    "blackbox http module",
                    bb,
                    f"http://127.0.0.1:{bb_port}/probe",
                    {"target": f"{endpoint}/healthz", "module": "http_json"},
                ),
                Contender(
                    "afirgen /probe vllm (3 req)",
                    ours,
                    f"http://127.0.0.1:{ours_port}/probe",
                    {"target": "bench-vllm"},
                ),
            ]
            for contender in contenders:  # warm up: connections, imports, first-request costs
                contender.round(20)
                contender.latencies.clear()
                contender.cpu = 0.0
                contender.probes = 0
            for _ in range(args.rounds):
                for contender in contenders:
                    contender.round(args.per_round)
        report(contenders, args.rounds, args.per_round)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(contenders: list[Contender], rounds: int, per_round: int) -> None:
    print(f"{rounds} interleaved rounds x {per_round} probes, loopback endpoint\n")
    print(f"{'':30} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/probe':>13}")
    for c in contenders:
        cpu_ms = 1000 * c.cpu / c.probes
        print(f"{c.name:30} {1000 * c.p(0.5):8.3f} {1000 * c.p(0.99):8.3f} {cpu_ms:13.3f}")
    ours_c, bb_c = contenders[0], contenders[1]
    print(
        "\nratio ours/blackbox (generic vs http module): "
        f"p50 {ours_c.p(0.5) / bb_c.p(0.5):.2f}x, "
        f"p99 {ours_c.p(0.99) / bb_c.p(0.99):.2f}x, "
        f"CPU/probe {(ours_c.cpu / ours_c.probes) / (bb_c.cpu / bb_c.probes):.2f}x"
    )


if __name__ == "__main__":
    raise SystemExit(main())
