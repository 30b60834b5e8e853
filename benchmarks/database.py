"""The database collector beside Debian's postgres_exporter and mysqld_exporter.

    python benchmarks/database.py [--baseline DIR]

With `--baseline DIR` (a source tree of an earlier version, e.g. from `git archive`), that
version runs as a third exporter in the same interleaved rounds: before / after / peer.

Starts a private PostgreSQL 15 and a private MariaDB (tests/db_servers.py: fresh data
directories on free loopback ports, stopped at the end) holding the same ten tables, then, on
free loopback ports, our exporter watching only PostgreSQL (then only MariaDB) and the Debian
peer on the same server, and scrapes them the way Prometheus does (its Accept,
Accept-Encoding and scrape-timeout headers, one keep-alive connection) in interleaved rounds
of one run. Prints scrape latency p50/p99, CPU per scrape (the process tree's CPU clock in
ns, `harness.cpu_seconds`, before/after each round) and per sample, RSS after all rounds
(ROUNDS x SCRAPES = 500 scrapes), and each exporter's ratio to the peer. Private servers
keep the machine's shared ones out of it: other people's tables and load do not move the
figures, and the peers' heavy information_schema scans never touch a server someone else is
testing on.

What each side reads, so the figures are read fairly:
- ours: pool, pg_stat_activity, pg_stat_database, pg_stat_user_tables + sizes (PostgreSQL);
  information_schema.GLOBAL_STATUS (selected) with the variables, information_schema.TABLES
  (MariaDB).
- postgres_exporter 0.11 defaults (pg_stat_database, pg_stat_bgwriter, pg_settings,
  pg_locks, pg_stat_activity, replication, database sizes).
- mysqld_exporter 0.14 defaults (all of SHOW GLOBAL STATUS and VARIABLES, InnoDB cmp tables,
  replica status) plus --collect.info_schema.tables, the closest match to ours.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks.harness import (  # noqa: E402
    Server,
    free_port,
    measure_round,
    our_exporter,
    percentile,
    rss_bytes,
    started,
)
from tests.db_servers import private_mariadb, private_postgres  # noqa: E402
from tests.dbhelp import execute  # noqa: E402

ROUNDS, SCRAPES = 5, 100
TABLES = 10  # bench_t0 .. bench_t9, 100 rows each, on both servers
LOG = "bench-db"  # exporters' output: <temp dir>/bench-db-<name>-<port>.log


def fill(url: str) -> None:
    """The same small schema on each server, so both sides report the same tables."""
    statements = []
    for i in range(TABLES):
        statements += [
            f"CREATE TABLE bench_t{i} (id int PRIMARY KEY, body varchar(100))",
            *(f"INSERT INTO bench_t{i} VALUES ({n}, 'row {n}')" for n in range(100)),
        ]
    execute(url, *statements)


def peer_dsn(url: str, kind: str) -> str:
    parsed = make_url(url)
    if kind == "postgresql":
        return f"postgresql://{parsed.username}@{parsed.host}:{parsed.port}/{parsed.database}?sslmode=disable"
    return f"{parsed.username}@tcp({parsed.host}:{parsed.port})/{parsed.database}"


def compare(title: str, servers: Sequence[Server]) -> None:
    """Interleaved rounds over `servers` (the peer last); the table of figures and ratios."""
    # started: config loaded, engines created (SQLAlchemy and the driver imported), no scrape
    at_start = {server.name: rss_bytes(server.pid) / 2**20 for server in servers}
    for _ in range(ROUNDS):
        for server in servers:
            measure_round(server, SCRAPES, decode=True)
    *ours, peer = servers
    print(f"\n{title}: {ROUNDS} interleaved rounds of {SCRAPES} scrapes")
    print(
        f"{'':24}"
        + "".join(f"{s.name:>18}" for s in servers)
        + "".join(f"{s.name + '/peer':>18}" for s in ours)
    )
    rows: list[tuple[str, Callable[[Server], float]]] = [
        ("scrape p50 (ms)", lambda s: statistics.median(s.latencies) * 1e3),
        ("scrape p99 (ms)", lambda s: percentile(s.latencies, 0.99) * 1e3),
        ("CPU per scrape (ms)", lambda s: statistics.median(s.cpu) * 1e3),
        ("CPU spread (ms)", lambda s: (max(s.cpu) - min(s.cpu)) * 1e3),
        ("CPU per sample (us)", lambda s: statistics.median(s.cpu) * 1e6 / max(1, s.series)),
        ("RSS at start (MiB)", lambda s: at_start[s.name]),
        ("RSS after (MiB)", lambda s: rss_bytes(s.pid) / 2**20),
        ("series per scrape", lambda s: float(s.series)),
    ]
    for label, figure in rows:
        values = [figure(s) for s in servers]
        ratios = "".join(f"{v / values[-1]:17.2f}x" for v in values[:-1]) if values[-1] else ""
        print(f"{label:24}" + "".join(f"{v:18.2f}" for v in values) + ratios)


def exporter_config(port: int, url: str, directory: Path) -> Path:
    config = directory / f"db-{port}.yml"
    config.write_text(
        "collectors: {system: {enabled: false}, process: {enabled: false}}\n"
        f"databases:\n  - name: bench\n    url: {url}\n"
    )
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="source tree of the version to compare")
    args = parser.parse_args()
    postgres_exporter = shutil.which("prometheus-postgres-exporter")
    mysqld_exporter = shutil.which("prometheus-mysqld-exporter")
    if not postgres_exporter or not mysqld_exporter:
        sys.exit("install prometheus-postgres-exporter and prometheus-mysqld-exporter")
    with (
        tempfile.TemporaryDirectory(prefix="bench-db-") as tmp,
        private_postgres() as pg_url,
        private_mariadb() as my_url,
    ):
        fill(pg_url)
        fill(my_url)
        # (title, our URL, peer, peer's flags, peer's DATA_SOURCE_NAME). mysqld_exporter 0.14
        # insists on a password in --config.my-cnf; root has none here, so use its
        # DATA_SOURCE_NAME (later versions: --mysqld.username/--mysqld.address instead).
        comparisons = [
            (
                "PostgreSQL 15",
                pg_url,
                "postgres_exporter",
                [postgres_exporter],
                peer_dsn(pg_url, "postgresql"),
            ),
            (
                "MariaDB 10.11",
                my_url,
                "mysqld_exporter",
                [mysqld_exporter, "--collect.info_schema.tables"],
                peer_dsn(my_url, "mysql"),
            ),
        ]
        directory = Path(tmp)
        for title, url, peer_name, peer_command, dsn in comparisons:
            with contextlib.ExitStack() as stack:
                servers = []
                if args.baseline is not None:
                    port = free_port()
                    baseline = args.baseline.resolve()
                    servers.append(
                        stack.enter_context(
                            started(
                                "before",
                                our_exporter(port, exporter_config(port, url, directory)),
                                port,
                                env={"PYTHONPATH": str(baseline)},
                                cwd=baseline,
                                log_prefix=LOG,
                            )
                        )
                    )
                port = free_port()
                ours = our_exporter(port, exporter_config(port, url, directory))
                servers.append(stack.enter_context(started("afirgen", ours, port, log_prefix=LOG)))
                port = free_port()
                peer_args = [peer_command[0], f"--web.listen-address=127.0.0.1:{port}"]
                servers.append(
                    stack.enter_context(
                        started(
                            peer_name,
                            [*peer_args, *peer_command[1:]],
                            port,
                            env={"DATA_SOURCE_NAME": dsn},
                            log_prefix=LOG,
                        )
                    )
                )
                compare(f"{title} (private server, {TABLES} tables)", servers)


if __name__ == "__main__":
    main()
