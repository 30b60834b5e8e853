"""Our Redis collector beside Debian's prometheus-redis-exporter, on the same private Redis.

    python -m benchmarks.redis [--rounds 5] [--scrapes 200] [--seconds 4] [--baseline DIR]
                               [--many-commands]
    python -m benchmarks.redis --huge-reply
    python -m benchmarks.redis --wedged [--dripping] [--scrapes 200]

(as a module: run as a script, its own name would shadow redis-py)

Starts a private redis-server (Redis 7, persistence off) on a free loopback port, fills it with
thousands of keys over several dbs and a mix of commands, then starts `python -m exporter` (only
the redis collector: the host and process collectors are off, as node_exporter's job) and
`prometheus-redis-exporter` on loopback ports. In interleaved rounds it measures, with
Prometheus's scrape headers: sequential scrape latency (p50/p99), CPU per scrape (each process
tree's CPU clock in ns, `harness.cpu_seconds`, before/after the round), scrapes/s with 16 concurrent
connections (wrk, when installed, else a threaded client) and RSS. Prints the figures and our/their
ratios side by side. `--baseline DIR` also runs the exporter of another source tree (say
`git archive` of the commit before a change, unpacked in DIR) as `baseline`, in the same
interleaved rounds, so before / after / redis_exporter come from one run. `--many-commands`
adds ~100 more commands, error prefixes and dbs to the server (a busier INFO and histogram).

`--huge-reply` measures instead the exporter's memory while a loopback server answers INFO
with a 1 GiB bulk string sent as fast as it is read: RSS before the scrape and the peak
(VmHWM) after it, and how much the server got rid of before the exporter hung up.

`--wedged` scrapes the exporter `--scrapes` times (0.5 s scrape timeout) while its Redis is
stopped with SIGSTOP, printing the exporter's open file descriptors and threads along the way,
then counts the scrapes until `cache_up` is 1 again after SIGCONT. With `--dripping` the Redis
is instead a loopback server that drips its INFO reply one byte every 0.2 s, then answers
normally again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (  # noqa: E402
    Scraper,
    Server,
    count_series,
    free_port,
    measure_round,
    measure_throughput,
    our_exporter,
    percentile,
    rss_bytes,
    started,
    wait_http,
)

CONNECTIONS = 16


def populate(port: int, keys: int = 8000, dbs: int = 4) -> None:
    """Thousands of keys of several types over `dbs` dbs, and a mix of commands and errors."""
    rng = random.Random(4)
    for db in range(dbs):
        client = redis.Redis(port=port, db=db)
        pipe = client.pipeline(transaction=False)
        for i in range(keys // dbs):
            kind = i % 5
            if kind == 0:
                pipe.set(f"s:{i}", "x" * rng.randint(10, 200), ex=3600 if i % 3 == 0 else None)
            elif kind == 1:
                pipe.hset(f"h:{i}", mapping={"a": i, "b": "y"})
            elif kind == 2:
                pipe.rpush(f"l:{i}", *range(5))
            elif kind == 3:
                pipe.sadd(f"set:{i}", *range(4))
            else:
                pipe.zadd(f"z:{i}", {"a": 1.0, "b": 2.0})
        pipe.execute()
        pipe = client.pipeline(transaction=False)
        for i in range(2000):
            pipe.get(f"s:{rng.randrange(keys)}")
            pipe.hget(f"h:{rng.randrange(keys)}", "a")
            pipe.incr(f"counter:{i % 50}")
            pipe.lrange(f"l:{rng.randrange(keys)}", 0, -1)
            pipe.sismember(f"set:{rng.randrange(keys)}", 1)
            pipe.zscore(f"z:{rng.randrange(keys)}", "a")
            pipe.expire(f"s:{rng.randrange(keys)}", 7200)
            pipe.exists(f"missing:{i}")
        pipe.mget([f"s:{i}" for i in range(100)])
        pipe.execute()
        for bad in (("LPUSH", "s:0", "x"), ("NOSUCHCOMMAND",), ("GET",)):
            try:
                client.execute_command(*bad)
            except redis.ResponseError:
                pass


def many_commands(port: int) -> None:
    """About 100 more distinct commands, several error prefixes and dbs: a busy server's INFO
    (commandstats, errorstats, keyspace) and LATENCY HISTOGRAM."""
    client = redis.Redis(port=port, db=9)
    pipe = client.pipeline(transaction=False)
    for i in range(200):
        pipe.append(f"a{i}", "x").strlen(f"a{i}").getrange(f"a{i}", 0, 1).setnx(f"n{i}", 1)
        pipe.incrby("c", 2).decr("d").lpush("L", i).rpop("L").llen("L").lindex("L", 0)
        pipe.ltrim("L", 0, 100).hset("H", f"f{i}", i).hgetall("H").hlen("H").hexists("H", "f1")
        pipe.hincrby("H", "n", 1).hkeys("H").hvals("H").hmget("H", ["f1", "f2"]).hdel("H", "z")
        pipe.scard("S").smembers("S").srem("S", -1).sunion("S", "S2").sinter("S", "S2")
        pipe.zadd("Z", {f"m{i}": i}).zrange("Z", 0, 5).zrangebyscore("Z", 0, 10)
        pipe.zrank("Z", "m1").zincrby("Z", 1, "m2").zcard("Z").zrem("Z", "x").pfadd("P", i)
        pipe.pfcount("P").setbit("B", i, 1).bitcount("B").getbit("B", 3).xadd("X", {"a": i})
        pipe.xlen("X").xrange("X", count=2).geoadd("G", (13.36, 38.11, f"g{i}"))
        pipe.geodist("G", "g0", f"g{i}").ttl(f"a{i}").pttl(f"a{i}").type(f"a{i}")
        pipe.persist(f"a{i}").delete(f"n{i}").echo("x").dbsize().time().randomkey()
        pipe.eval("return 1", 0).mset({"m1": 1, "m2": 2}).msetnx({"mm": 1})
        pipe.psetex("pp", 1000, 1).lpos("L", 1).lrem("L", 0, "z").rpoplpush("L", "L2")
        pipe.lmove("L2", "L", "LEFT", "RIGHT").smove("S", "S3", 1).srandmember("S").spop("S3")
        pipe.zcount("Z", 0, 100).zrevrange("Z", 0, 3).zpopmin("Z2").hsetnx("H", "q", 1)
        pipe.hstrlen("H", "f1").hrandfield("H").scan(0).hscan("H").sscan("S").zscan("Z")
        pipe.expireat("pp", 2000000000).pexpire("pp", 100000).touch("m2").lastsave()
        for command in (("OBJECT", "ENCODING", "H"), ("MEMORY", "USAGE", "H"),
                        ("CONFIG", "GET", "maxmemory"), ("SLOWLOG", "LEN"),
                        ("SCRIPT", "EXISTS", "abc"), ("CLIENT", "INFO")):  # fmt: skip
            pipe.execute_command(*command)
    pipe.execute()
    client.set("busy", 1)
    client.xgroup_create("X", "g")
    for bad in (("EVALSHA", "a" * 40, 0), ("RESTORE", "busy", 0, client.dump("busy")),
                ("XGROUP", "CREATE", "X", "g", "$"), ("INCR", "H"), ("WRONGCMD",),
                ("XREADGROUP", "GROUP", "nog", "c", "STREAMS", "X", ">")):  # fmt: skip
        with contextlib.suppress(redis.ResponseError):
            client.execute_command(*bad)


def samples(server: Server) -> int:
    """Samples in one plain-text scrape."""
    url = f"http://127.0.0.1:{server.port}{server.path}"
    return count_series(httpx.get(url, headers={"Accept": "text/plain"}).content)


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def huge_reply() -> int:
    """One scrape of a server announcing (and sending) a 1 GiB INFO reply."""
    from tests.redis_server import flood, like_redis, resp_server

    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-huge-"))
    sent = [0]
    info = b"# Server\r\nredis_version:7.0.15\r\n"
    port = free_port()
    try:
        with resp_server(like_redis(info, INFO=flood(b"$1073741824\r\n", b"a", sent))) as srv:
            config = workdir / "exporter.yml"
            config.write_text(
                "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
                f"redis:\n  - name: huge\n    url: {srv.url}\n"
            )
            with started("ours", our_exporter(port, config), port, log_dir=workdir) as ours:
                url = f"http://127.0.0.1:{port}/metrics"
                wait_http(url.replace("/metrics", "/-/healthy"))
                before = rss_bytes(ours.pid)
                headers = {"Accept": "text/plain", "X-Prometheus-Scrape-Timeout-Seconds": "10"}
                body = httpx.get(url, headers=headers, timeout=30).text
                peak = peak_rss_bytes(ours.pid)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    up = next((line for line in body.splitlines() if line.startswith("cache_up")), "none")
    print("one scrape of a server answering INFO with a 1 GiB bulk string, sent at full speed")
    print(f"RSS before {before / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB; {up}")
    print(f"the server sent {sent[0] / 2**20:.1f} MiB before the exporter hung up")
    return 0


def process_counts(pid: int) -> tuple[int, int]:
    """(open file descriptors, threads) of one process."""
    threads = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Threads:")
    )
    return len(os.listdir(f"/proc/{pid}/fd")), threads


@contextlib.contextmanager
def stopped_redis(workdir: Path) -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A private redis-server and a switch that stops (SIGSTOP) or resumes (SIGCONT) it."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    with started("redis", args, port, log_dir=workdir, timeout=10) as server:

        def wedge(on: bool) -> None:
            os.kill(server.pid, signal.SIGSTOP if on else signal.SIGCONT)

        try:
            yield f"redis://127.0.0.1:{port}/0", wedge
        finally:
            wedge(False)


@contextlib.contextmanager
def dripping_redis() -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A loopback server whose INFO reply drips one byte every 0.2 s while wedged."""
    from tests.redis_server import drip, like_redis, resp_server

    wedged_now = threading.Event()
    info = (Path(__file__).resolve().parent.parent / "tests/data/info_redis6.txt").read_bytes()
    normal = like_redis(info)

    def answer(command: list[bytes]) -> Any:
        if command[0] == b"INFO" and wedged_now.is_set():
            return drip(b"$100000\r\n")
        return normal(command)

    with resp_server(answer) as server:
        yield server.url, lambda on: wedged_now.set() if on else wedged_now.clear()


def wedged(scrapes: int, dripping: bool) -> int:
    """Scrapes of an exporter whose Redis is wedged, then answers again."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-wedged-"))
    port = free_port()
    headers = {"Accept": "text/plain", "X-Prometheus-Scrape-Timeout-Seconds": "0.5"}
    source = dripping_redis() if dripping else stopped_redis(workdir)
    try:
        with source as (redis_url, wedge):
            config = workdir / "exporter.yml"
            config.write_text(
                "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
                f"redis:\n  - name: cache\n    url: {redis_url}\n"
            )
            with (
                started("ours", our_exporter(port, config), port, log_dir=workdir) as ours,
                httpx.Client(timeout=10) as http,
            ):
                url = f"http://127.0.0.1:{port}/metrics"
                wait_http(url)

                def cache_up() -> str:
                    body = http.get(url, headers=headers).text
                    line = next(x for x in body.splitlines() if x.startswith("cache_up"))
                    return line.split()[1]

                counts = process_counts(ours.pid)
                print(f"before: cache_up {cache_up()}, (fds, threads) {counts}")
                wedge(True)
                slowest, down = 0.0, 0
                for i in range(1, scrapes + 1):
                    started_at = time.monotonic()
                    down += cache_up() == "0.0"
                    slowest = max(slowest, time.monotonic() - started_at)
                    if i in (1, scrapes // 4, scrapes // 2, 3 * scrapes // 4, scrapes):
                        counts = process_counts(ours.pid)
                        print(f"wedged, scrape {i}: (fds, threads) {counts}")
                wedge(False)
                print(f"{down}/{scrapes} scrapes answered cache_up 0, slowest {slowest:.3f} s")
                after = next((n for n in range(1, 41) if cache_up() == "1.0"), None)
                state = f"at scrape {after}" if after else "not within 40 scrapes"
                print(f"answering again: cache_up 1 {state}, {process_counts(ours.pid)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--baseline", type=Path, help="another source tree, run as `baseline`")
    parser.add_argument("--many-commands", action="store_true", help=many_commands.__doc__)
    parser.add_argument("--huge-reply", action="store_true", help=huge_reply.__doc__)
    parser.add_argument("--wedged", action="store_true", help=wedged.__doc__)
    parser.add_argument("--dripping", action="store_true", help=dripping_redis.__doc__)
    args = parser.parse_args()
    if args.huge_reply:
        return huge_reply()
    if args.wedged:
        return wedged(args.scrapes, args.dripping)
    for binary in ("redis-server", "prometheus-redis-exporter"):
        if not shutil.which(binary):
            raise SystemExit(f"{binary} is not installed (scripts/install-tools)")

    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    redis_port, ours_port, theirs_port = free_port(), free_port(), free_port()
    redis_args = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                  "--save", "", "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    config = workdir / "exporter.yml"
    config.write_text(
        "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
        f"redis:\n  - name: cache\n    url: redis://127.0.0.1:{redis_port}/0\n"
    )
    theirs_args = ["prometheus-redis-exporter", f"--redis.addr=redis://127.0.0.1:{redis_port}",
                   f"--web.listen-address=127.0.0.1:{theirs_port}"]  # fmt: skip
    try:
        with started("redis", redis_args, redis_port, log_dir=workdir, timeout=10):
            redis.Redis(port=redis_port).ping()  # PING is part of the command mix measured
            populate(redis_port)
            if args.many_commands:
                many_commands(redis_port)
            with contextlib.ExitStack() as stack:
                servers = [
                    stack.enter_context(
                        started("ours", our_exporter(ours_port, config), ours_port, log_dir=workdir)
                    )
                ]
                if args.baseline is not None:
                    base_port, base = free_port(), args.baseline.resolve()
                    base_args = our_exporter(base_port, config)
                    env = {"PYTHONPATH": str(base)}
                    servers.append(
                        stack.enter_context(
                            started(
                                "baseline", base_args, base_port, env=env, log_dir=workdir, cwd=base
                            )
                        )
                    )
                servers.append(
                    stack.enter_context(
                        started("redis_exporter", theirs_args, theirs_port, log_dir=workdir)
                    )
                )
                sizes = {}
                for server in servers:
                    wait_http(f"http://127.0.0.1:{server.port}{server.path}")
                for server in servers:
                    scraper = Scraper(server, decode=True)  # warm up: connections, caches
                    for _ in range(20):
                        scraper.scrape()
                    scraper.close()
                    sizes[server.name] = samples(server)
                for round_ in range(args.rounds):
                    order = servers if round_ % 2 == 0 else servers[::-1]
                    for server in order:
                        measure_round(server, args.scrapes, decode=True)
                    for server in order:
                        measure_throughput(server, CONNECTIONS, args.seconds)
                rss = {server.name: rss_bytes(server.pid) for server in servers}
        report(servers, rss, sizes, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(
    servers: list[Server], rss: dict[str, int], sizes: dict[str, int], args: argparse.Namespace
) -> None:
    """A row per exporter (redis_exporter last), then each of ours against it (and against
    the baseline when there is one); medians over the rounds, spread of CPU as min-max."""
    rows = []
    for server in servers:
        cpu = statistics.median(server.cpu) * 1e3
        rows.append(
            (
                server.name,
                statistics.median(server.latencies) * 1e3,
                percentile(server.latencies, 0.99) * 1e3,
                cpu,
                cpu * 1e3 / sizes[server.name],
                statistics.median(server.throughput[CONNECTIONS]),
                rss[server.name] / 2**20,
                sizes[server.name],
            )
        )
    print(
        f"{args.rounds} interleaved rounds of {args.scrapes} sequential scrapes and "
        f"{args.seconds:g}s at 16 connections each; Prometheus scrape headers (gzip)."
    )
    header = ("", "p50 ms", "p99 ms", "CPU ms/scrape", "us/sample", "scrapes/s @16", "RSS MiB",
              "samples")  # fmt: skip
    print("{:<22}{:>9}{:>9}{:>15}{:>11}{:>15}{:>10}{:>9}".format(*header))
    for row in rows:
        print("{:<22}{:>9.2f}{:>9.2f}{:>15.3f}{:>11.2f}{:>15.0f}{:>10.1f}{:>9}".format(*row))
    ratio_row = "{:<22}{:>8.2f}x{:>8.2f}x{:>14.2f}x{:>10.2f}x{:>14.2f}x{:>9.2f}x{:>8.2f}x"
    pairs = [(row, rows[-1]) for row in rows[:-1]]
    if len(rows) == 3:
        pairs.append((rows[0], rows[1]))
    for mine, other in pairs:
        ratios = [mine[i] / other[i] if other[i] else float("nan") for i in range(1, 8)]
        print(ratio_row.format(f"{mine[0]}/{other[0]}"[:21], *ratios))
    for server in servers:
        low, high = min(server.cpu) * 1e3, max(server.cpu) * 1e3
        print(f"CPU ms/scrape spread over rounds, {server.name}: {low:.3f}-{high:.3f}")
    print("targets (ours/redis_exporter): CPU <= 1.0x, p50 <= 1.2x, scrapes/s >= 1.0x")


if __name__ == "__main__":
    raise SystemExit(main())
