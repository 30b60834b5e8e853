"""Basic auth under a burst of wrong passwords, this exporter beside node_exporter.

    python benchmarks/auth.py [--cost 10]

Both get the same bcrypt user (ours through `web.basic_auth_users`, node_exporter through
its exporter-toolkit `--web.config.file`). For each, a Prometheus-like scraper with the right
password (verified once, then remembered by both; node_exporter also remembers failed
passwords, so every wrong password here is a new one) scrapes every 50 ms, first alone and
then while bursts of 200 concurrent wrong-password requests arrive: from one address, and from 200
different loopback addresses (127.0.x.y) at once. Prints the CPU the server spent per rejected
password, the answers it gave, scrape latency p50/p99 with and without a burst, and the time to
answer a wrong password for a known and an unknown user name (each from a fresh address).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bcrypt  # noqa: E402

from benchmarks.harness import (  # noqa: E402
    cpu_seconds,
    free_port,
    our_exporter,
    percentile,
    started,
)

PASSWORD = b"right-password"
BURST = 200
#: Every wrong password is new: the toolkit also remembers failed ones.
_wrong = iter(range(10**9))


def wrong_password() -> bytes:
    return b"wrong-%d" % next(_wrong)


def basic(user: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode()


def scrape_latencies(port: int, stop: threading.Event, out: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": basic("prom", PASSWORD), "Accept-Encoding": "gzip"}
    while not stop.is_set():
        started_at = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"valid scrape answered {response.status}")
        out.append(time.perf_counter() - started_at)
        time.sleep(0.05)
    conn.close()


async def one_request(port: int, source: str, user: str, password: bytes) -> tuple[int, float]:
    started_at = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(
        f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: {basic(user, password)}\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    return int(status_line.split()[1]), time.perf_counter() - started_at


async def burst(port: int, sources: list[str]) -> list[int]:
    answers = await asyncio.gather(
        *(
            one_request(port, sources[i % len(sources)], "prom", wrong_password())
            for i in range(BURST)
        )
    )
    return [status for status, _ in answers]


def with_scraper(port: int, action) -> tuple[list[float], object]:
    latencies: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(target=scrape_latencies, args=(port, stop, latencies))
    thread.start()
    try:
        result = action()
    finally:
        stop.set()
        thread.join()
    return latencies, result


def measure(name: str, port: int, pid: int, round_index: int) -> dict[str, str]:
    figures: dict[str, str] = {}
    quiet, _ = with_scraper(port, lambda: time.sleep(3))
    figures["scrape p50 / p99, no burst (ms)"] = (
        f"{statistics.median(quiet) * 1e3:.1f} / {percentile(quiet, 0.99) * 1e3:.1f}"
    )
    for label, sources in (
        ("one address", [f"127.0.{10 + round_index}.1"]),
        (
            "200 addresses",
            [f"127.{20 + round_index}.{i // 250}.{i % 250 + 1}" for i in range(BURST)],
        ),
    ):
        before = cpu_seconds(pid)

        def run_burst(sources=sources) -> list[int]:
            codes = asyncio.run(burst(port, sources))
            time.sleep(0.5)  # let the server finish what it queued
            return codes

        busy, codes = with_scraper(port, run_burst)
        cpu = cpu_seconds(pid) - before
        counts = Counter(codes)  # type: ignore[arg-type]
        figures[f"CPU per rejected password, {label} (ms)"] = f"{cpu / BURST * 1e3:.2f}"
        figures[f"answers, {label}"] = " ".join(f"{k}x{v}" for k, v in sorted(counts.items()))
        figures[f"scrape p50 / p99 during burst from {label} (ms)"] = (
            f"{statistics.median(busy) * 1e3:.1f} / {percentile(busy, 0.99) * 1e3:.1f}"
        )
    for user in ("prom", "nobody"):
        times = [
            asyncio.run(one_request(port, f"127.{40 + round_index}.{i}.1", user, wrong_password()))[
                1
            ]
            for i in range(5)
        ]
        figures[f"wrong password, {'known' if user == 'prom' else 'unknown'} user (ms)"] = (
            f"{statistics.median(times) * 1e3:.1f}"
        )
    return figures


def small_node_exporter(port: int, *flags: str) -> list[str]:
    """node_exporter on loopback with two cheap collectors: the HTTP layer is what is measured."""
    node = shutil.which("prometheus-node-exporter")
    if node is None:
        sys.exit("prometheus-node-exporter is not installed: run scripts/install-tools --peers")
    return [
        node,
        f"--web.listen-address=127.0.0.1:{port}",
        *flags,
        "--collector.disable-defaults",
        "--collector.loadavg",
        "--collector.meminfo",
    ]


def main() -> None:
    cost = int(sys.argv[sys.argv.index("--cost") + 1]) if "--cost" in sys.argv else 10
    hashed = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(rounds=cost)).decode()
    with tempfile.TemporaryDirectory() as tmp:
        ours_config = Path(tmp) / "exporter.yml"
        ours_config.write_text(f"web:\n  basic_auth_users:\n    prom: '{hashed}'\n")
        web_config = Path(tmp) / "web.yml"
        web_config.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
        our_port, node_port = free_port(), free_port()
        node_args = small_node_exporter(node_port, f"--web.config.file={web_config}")
        rows: dict[str, dict[str, str]] = {}
        with (
            started("afirgen", our_exporter(our_port, ours_config), our_port) as ours,
            started("node_exporter", node_args, node_port) as peer,
        ):
            for round_index in range(2):
                for server in (ours, peer):
                    figures = measure(server.name, server.port, server.pid, round_index)
                    for label, value in figures.items():
                        rows.setdefault(label, {})[f"{server.name} #{round_index + 1}"] = value
    columns = sorted({c for r in rows.values() for c in r})
    width = max(len(label) for label in rows)
    print(f"bcrypt cost {cost}, bursts of {BURST} concurrent wrong passwords")
    print(f"{'':{width}}  " + "  ".join(f"{c:>22}" for c in columns))
    for label, values in rows.items():
        print(f"{label:{width}}  " + "  ".join(f"{values.get(c, ''):>22}" for c in columns))


if __name__ == "__main__":
    main()
