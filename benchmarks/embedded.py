"""Added latency per request of the API middleware, beside no middleware and two PyPI peers.

The same FastAPI app runs four times, each in its own uvicorn process on a loopback port:

- `none`: no instrumentation (the baseline),
- `afirgen`: `exporter.embed(app)` (our middleware, the exporter mounted at /prometheus),
- `starlette_exporter`: `PrometheusMiddleware` + `handle_metrics`,
- `instrumentator`: `prometheus_fastapi_instrumentator.Instrumentator().instrument(app)`.

One client (a lean keep-alive HTTP/1.1 socket loop, so the client's own cost stays small)
sends the same templated request to each in interleaved rounds. It prints per-request latency
(median, p99), the added median latency over `none`, the ratio, and server CPU per request
from /proc/<pid>/stat. At the end every instrumented app is scraped once with Prometheus's
headers, to show that it counted the requests under the route template.

    python benchmarks/embedded.py [--rounds 20] [--requests 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import (  # noqa: E402
    PROMETHEUS_HEADERS,
    cpu_seconds,
    free_port,
    percentile,
    stop,
)

VARIANTS = ("none", "afirgen", "starlette_exporter", "instrumentator")
METRICS_PATH = {
    "afirgen": "/prometheus/metrics",
    "starlette_exporter": "/metrics",
    "instrumentator": "/metrics",
}
COUNT_SERIES = {
    "afirgen": "api_requests_total",
    "starlette_exporter": "starlette_requests_total",
    "instrumentator": "http_requests_total",
}
REQUEST = b"GET /api/fir/42 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n"


# -- the app, as each server process builds it --------------------------------------------


def build_app(variant: str):
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/api/fir/{fir_id}")
    async def get_fir(fir_id: int) -> dict:
        return {"id": fir_id, "status": "open"}

    if variant == "afirgen":
        from exporter import embed

        embed(app)
    elif variant == "starlette_exporter":
        from starlette_exporter import PrometheusMiddleware, handle_metrics

        app.add_middleware(PrometheusMiddleware, group_paths=True)
        app.add_route("/metrics", handle_metrics)
    elif variant == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app).expose(app)
    return app


def serve(variant: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        build_app(variant), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


# -- the client -------------------------------------------------------------------------


class KeepAlive:
    """One HTTP/1.1 connection; reads exactly one Content-Length response per request."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def get(self) -> float:
        started = time.perf_counter()
        self.sock.sendall(REQUEST)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.split(b"\r\n")[0].decode())
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return time.perf_counter() - started

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def wait_for(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            client = KeepAlive(port)
            client.get()
            client.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def check_counted(variant: str, port: int, sent: int) -> str:
    import httpx

    text = httpx.get(
        f"http://127.0.0.1:{port}{METRICS_PATH[variant]}", headers=PROMETHEUS_HEADERS
    ).text
    name = COUNT_SERIES[variant]
    lines = [
        line
        for line in text.splitlines()
        if line.startswith(name) and "/api/fir/{fir_id}" in line and not line.startswith("#")
    ]
    total = sum(float(line.rsplit(" ", 1)[1]) for line in lines)
    return f"{name} under /api/fir/{{fir_id}}: {total:.0f} (sent {sent})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=1000, help="per variant per round")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        for variant in VARIANTS:
            port = free_port()
            cmd = [sys.executable, __file__, "--serve", variant, "--port", str(port)]
            servers[variant] = (subprocess.Popen(cmd, env=env), port)
        for proc, port in servers.values():
            wait_for(port, proc)
        clients = {v: KeepAlive(port) for v, (_, port) in servers.items()}
        for client in clients.values():  # warm-up: imports, caches, first label children
            for _ in range(300):
                client.get()
        latencies: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpu: dict[str, float] = dict.fromkeys(VARIANTS, 0.0)
        order = list(VARIANTS)
        for _ in range(args.rounds):
            random.shuffle(order)
            for variant in order:
                proc, _ = servers[variant]
                client = clients[variant]
                before = cpu_seconds(proc.pid)
                latencies[variant].extend(client.get() for _ in range(args.requests))
                cpu[variant] += cpu_seconds(proc.pid) - before
        report(latencies, cpu, args.rounds * args.requests)
        sent = args.rounds * args.requests + 300 + 1  # + warm-up + the start-up check
        for variant in VARIANTS[1:]:
            print(f"  check {variant:<20} {check_counted(variant, servers[variant][1], sent)}")
    finally:
        for proc, _ in servers.values():
            stop(proc)


def report(latencies: dict[str, list[float]], cpu: dict[str, float], per_variant: int) -> None:
    base = statistics.median(latencies["none"])
    base_cpu = cpu["none"] / per_variant
    print(f"{per_variant} requests per variant, interleaved rounds, one keep-alive connection")
    header = (
        f"{'variant':<20}{'median us':>10}{'p99 us':>9}{'added us':>10}{'ratio':>7}"
        f"{'cpu us/req':>12}{'cpu ratio':>10}"
    )
    print(header)
    for variant, values in latencies.items():
        median = statistics.median(values)
        per_request_cpu = cpu[variant] / per_variant
        print(
            f"{variant:<20}{median * 1e6:>10.0f}{percentile(values, 0.99) * 1e6:>9.0f}"
            f"{(median - base) * 1e6:>10.0f}{median / base:>7.2f}"
            f"{per_request_cpu * 1e6:>12.0f}{per_request_cpu / base_cpu:>10.2f}"
        )


if __name__ == "__main__":
    main()
