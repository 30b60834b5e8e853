"""The database collector beside Debian's postgres_exporter and mysqld_exporter.

    python benchmarks/database.py

Starts, on free loopback ports, our exporter watching only PostgreSQL (then only MariaDB) and
the Debian peer on the same server, and scrapes them the way Prometheus does (its Accept,
Accept-Encoding and scrape-timeout headers, one keep-alive connection) in interleaved rounds
of one run. Prints scrape latency p50/p99, CPU per scrape (utime+stime of the process tree
from /proc, before/after each round) and our/peer ratios.

What each side reads, so the figures are read fairly:
- ours: pool, pg_stat_activity, pg_stat_database, pg_stat_user_tables + sizes (PostgreSQL);
  SHOW GLOBAL STATUS (selected), variables, information_schema.TABLES (MariaDB).
- postgres_exporter 0.11 defaults (pg_stat_database, pg_stat_bgwriter, pg_settings,
  pg_locks, pg_stat_activity, replication, database sizes).
- mysqld_exporter 0.14 defaults (all of SHOW GLOBAL STATUS and VARIABLES, InnoDB cmp tables,
  replica status) plus --collect.info_schema.tables, the closest match to ours.
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
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
ROUNDS, SCRAPES = 5, 100
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test?sslmode=disable"
MY_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
MY_DSN = "root@tcp(127.0.0.1:3306)/test"


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


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    latencies: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    series: int = 0


@contextlib.contextmanager
def started(
    name: str, args: Sequence[str], port: int, env: dict[str, str] | None = None
) -> Iterator[Server]:
    log = Path(tempfile.gettempdir()) / f"bench-db-{name}-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            list(args),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{name} did not start, see {log}")
                time.sleep(0.05)
            yield Server(name, port, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def measure_round(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def scrape() -> None:
        conn.request("GET", "/metrics", headers=HEADERS)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{server.name}: HTTP {response.status}")
        if response.getheader("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        server.series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))

    scrape()  # warm the connection and the peer's first-time work
    before = cpu_seconds(server.proc.pid)
    for _ in range(SCRAPES):
        started_at = time.perf_counter()
        scrape()
        server.latencies.append(time.perf_counter() - started_at)
    server.cpu.append((cpu_seconds(server.proc.pid) - before) / SCRAPES)
    conn.close()


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def compare(title: str, ours: Server, peer: Server) -> None:
    for _ in range(ROUNDS):
        measure_round(ours)
        measure_round(peer)
    print(f"\n{title}: {ROUNDS} interleaved rounds of {SCRAPES} scrapes")
    print(f"{'':22}{ours.name:>14}{peer.name:>20}{'ratio':>9}")
    for label, mine, theirs in (
        ("scrape p50 (ms)", statistics.median(ours.latencies), statistics.median(peer.latencies)),
        ("scrape p99 (ms)", p99(ours.latencies), p99(peer.latencies)),
        ("CPU per scrape (ms)", statistics.median(ours.cpu), statistics.median(peer.cpu)),
    ):
        print(f"{label:22}{mine * 1e3:14.2f}{theirs * 1e3:20.2f}{mine / theirs:8.2f}x")
    print(f"{'series per scrape':22}{ours.series:14d}{peer.series:20d}")


def our_exporter(port: int, url: str, directory: Path) -> list[str]:
    config = directory / f"db-{port}.yml"
    config.write_text(
        "collectors: {system: {enabled: false}, process: {enabled: false}}\n"
        f"databases:\n  - name: bench\n    url: {url}\n"
    )
    return [
        sys.executable,
        "-m",
        "exporter",
        "--config",
        str(config),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--log.level",
        "warning",
    ]


def main() -> None:
    postgres_exporter = shutil.which("prometheus-postgres-exporter")
    mysqld_exporter = shutil.which("prometheus-mysqld-exporter")
    if not postgres_exporter or not mysqld_exporter:
        sys.exit("install prometheus-postgres-exporter and prometheus-mysqld-exporter")
    with tempfile.TemporaryDirectory(prefix="bench-db-") as tmp:
        directory = Path(tmp)
        ours_port, peer_port = free_port(), free_port()
        with (
            started("afirgen", our_exporter(ours_port, PG_URL, directory), ours_port) as ours,
            started(
                "postgres_exporter",
                [postgres_exporter, f"--web.listen-address=127.0.0.1:{peer_port}"],
                peer_port,
                env={"DATA_SOURCE_NAME": PG_DSN},
            ) as peer,
        ):
            compare("PostgreSQL 15 (shared server, database test)", ours, peer)
        # 0.14 insists on a password in --config.my-cnf; root has none here, so use its
        # DATA_SOURCE_NAME (later versions: --mysqld.username/--mysqld.address instead).
        ours_port, peer_port = free_port(), free_port()
        with (
            started("afirgen", our_exporter(ours_port, MY_URL, directory), ours_port) as ours,
            started(
                "mysqld_exporter",
                [
                    mysqld_exporter,
                    f"--web.listen-address=127.0.0.1:{peer_port}",
                    "--collect.info_schema.tables",
                ],
                peer_port,
                env={"DATA_SOURCE_NAME": MY_DSN},
            ) as peer,
        ):
            compare("MariaDB 10.11 (shared server, database test)", ours, peer)


if __name__ == "__main__":
    main()
