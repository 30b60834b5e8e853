"""The Redis collector with credentials and TLS, on private servers: ACL users with passwords
from files and the environment, wrong passwords and missing permissions read as `auth`,
passwords never shown, and `rediss://` with a private CA and a server name."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from collectors.redis import Target, build
from collectors.secret import Secret
from exporter.app import create_app
from exporter.config import load_config
from exporter.schema import ConfigError
from exporter.state import Exporter
from tests.redis_server import RedisServer, private_redis, tls_args
from tests.support import parse_samples, run_exposed, scrape_headers, serve_app
from tests.tls_certs import make_certificates

SCRAPE_HEADERS = scrape_headers(10, text=True)


def collector_for(url: str, **settings) -> object:
    return build(None, Target(name="cache", url=url, **settings))


# -- auth and secrets ------------------------------------------------------------------------

PASSWORD = "s3cret-Pa55word"
USER_PASSWORD = "exp0rter-pw-42"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory):
    """One server for the module (about 3 s to start): the tests only read it."""
    with private_redis(tmp_path_factory.mktemp("auth"), "--requirepass", PASSWORD) as srv:
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
        result, samples = run_exposed(collector)
        collector.close()
        assert result.success, (target.name, result.reason)
        assert samples.value("cache_up", cache=target.name) == 1.0


def test_wrong_password_or_missing_permission_is_auth(auth_server):
    for target in (
        Target(name="cache", url=auth_server.url, password=Secret("wrong-password")),
        Target(name="cache", url=auth_server.url),
        Target(
            name="cache", url=auth_server.url, username="noinfo", password=Secret(USER_PASSWORD)
        ),
    ):
        collector = build(None, target)
        result, samples = run_exposed(collector)
        collector.close()
        assert not result.success
        assert result.reason == "auth", target.username
        assert samples.value("cache_up", cache="cache") == 0.0


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
    samples = parse_samples(metrics)
    assert samples.value("cache_up", cache="ok") == 1.0
    assert samples.value("cache_up", cache="bad") == 0.0
    assert samples.value("cache_up", cache="down") == 0.0
    assert any("reason=auth" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError) as caught:
        load_config({"redis": [{"name": "x", "url": f"redis://:{PASSWORD}@[::1"}]}, env={})
    for secret in (PASSWORD, USER_PASSWORD, "wr0ng-Pa55word"):
        for where in (metrics, landing, probe, caplog.text, str(caught.value)):
            assert secret not in where


# -- TLS -------------------------------------------------------------------------------------


def test_rediss_with_ca_and_server_name(tmp_path: Path):
    certs = make_certificates(tmp_path)
    tls_port = RedisServer(tmp_path).port
    url = f"rediss://127.0.0.1:{tls_port}/0"
    with private_redis(tmp_path, *tls_args(tls_port, certs, auth_clients=False)):
        cases = {
            "named": dict(ca_file=str(certs["ca"]), server_name="redis.test"),
            "unnamed": dict(ca_file=str(certs["ca"])),  # the IP is not in the certificate
            "untrusted": dict(server_name="redis.test"),  # system CAs do not know ours
            "unverified": dict(verify=False),
        }
        outcome = {}
        for case, settings in cases.items():
            collector = collector_for(url, **settings)
            result, _ = run_exposed(collector)
            collector.close()
            outcome[case] = result.reason or "ok"
    assert outcome == {"named": "ok", "unnamed": "tls", "untrusted": "tls", "unverified": "ok"}
