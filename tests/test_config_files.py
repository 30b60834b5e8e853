"""Hostile and broken config files: exit 2 naming the key in check-config, a refused reload
that keeps the old config, never a traceback, a hang or a runaway read.

Each case is a real file on disk (a FIFO, /dev/zero, bytes that are not UTF-8, a certificate
that is not one) read by the real `check-config` process and by `Exporter.reload`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.cli import main
from exporter.config import read_config
from exporter.schema import ConfigError
from exporter.state import Exporter
from tests.support import ROOT
from tests.tls_certs import Authority

GOOD = "scrape:\n  default_timeout_seconds: 7\n"
DB = "postgresql+psycopg://app@127.0.0.1:1/app"


def model_server(**keys) -> str:
    entry = {"name": "m", "url": "http://127.0.0.1:1", **keys}
    return yaml.safe_dump({"model_servers": [entry]}, allow_unicode=True)


def database(**keys) -> str:
    return yaml.safe_dump({"databases": [{"name": "d", "url": DB, **keys}]}, allow_unicode=True)


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A server certificate and its key (from a throwaway CA)."""
    return Authority(tmp, "ca").issue("server", client=False)


def certificate_as_key(tmp: Path) -> str:
    """A web config whose key file is the certificate itself (one pair made, not two)."""
    cert = str(self_signed(tmp)[0])
    return yaml.safe_dump({"web": {"tls_cert_file": cert, "tls_key_file": cert}})


def write(tmp: Path, name: str, content: bytes) -> Path:
    path = tmp / name
    path.write_bytes(content)
    return path


def fifo(tmp: Path) -> Path:
    path = tmp / "fifo"
    os.mkfifo(path)
    return path


# (case id, build(tmp) -> config text or bytes, the problem expected in the message)
CASES = [
    (
        "not-utf8",
        lambda tmp: GOOD.encode() + b"# caf\xe9\n",
        "is not UTF-8 text (byte 43 is 0xe9)",
    ),
    ("yaml-3000-deep", lambda tmp: "scrape: " + "[" * 3000 + "]" * 3000, "nested too deeply"),
    (
        "mapping-40-deep",
        lambda tmp: "collectors: " + "{a: " * 40 + "1" + "}" * 40,
        "the config nests lists and mappings more than 32 deep",
    ),
    (
        "model-server-port-not-a-number",
        lambda tmp: model_server(url="http://127.0.0.1:port/"),
        "model_servers[0].url: the port 'port' is not a number from 1 to 65535",
    ),
    (
        "model-server-port-out-of-range",
        lambda tmp: model_server(url="http://127.0.0.1:99999/"),
        "model_servers[0].url: the port '99999' is not a number from 1 to 65535",
    ),
    (
        "model-server-port-0",
        lambda tmp: model_server(url="http://127.0.0.1:0/health"),
        "model_servers[0].url: the port '0' is not a number from 1 to 65535",
    ),
    (
        "model-server-metrics-url-port",
        lambda tmp: model_server(kind="vllm", metrics_url="http://127.0.0.1:80a/metrics"),
        "model_servers[0].metrics_url: the port '80a' is not a number from 1 to 65535",
    ),
    (
        "header-value-non-ascii",
        lambda tmp: model_server(headers={"X-Api-Key": "clé"}),
        "model_servers[0].headers.X-Api-Key: not usable in an HTTP header: character 3 is a "
        "control or non-ASCII character (printable ASCII only)",
    ),
    (
        "header-value-crlf",
        lambda tmp: model_server(headers={"X-Api-Key": "k\r\nInjected: 1"}),
        "model_servers[0].headers.X-Api-Key: not usable in an HTTP header: character 2 is CR or LF",
    ),
    (
        "header-name-space",
        lambda tmp: model_server(headers={"X Api": "v"}),
        "model_servers[0].headers: 'X Api' is not an HTTP header name",
    ),
    (
        "header-name-colon",
        lambda tmp: model_server(headers={"X-Api:": "v"}),
        "model_servers[0].headers: 'X-Api:' is not an HTTP header name",
    ),
    (
        "header-name-crlf",
        lambda tmp: model_server(headers={"X\r\nY": "v"}),
        "model_servers[0].headers: 'X\\r\\nY' is not an HTTP header name",
    ),
    (
        "bearer-token-non-ascii",
        lambda tmp: model_server(bearer_token="tøken-secret"),
        "model_servers[0].bearer_token: not usable in an HTTP header: character 2",
    ),
    (
        "bearer-token-file-non-ascii",
        lambda tmp: model_server(
            bearer_token_file=str(write(tmp, "token", "tøken-secret\n".encode()))
        ),
        "model_servers[0].bearer_token_file: not usable in an HTTP header: character 2",
    ),
    (
        "binary-password-file",
        lambda tmp: database(password_file=str(write(tmp, "pw", b"\xff\xfe\x00\x01\x89PNG"))),
        "is not UTF-8 text (byte 1 is 0xff)",
    ),
    (
        "password-file-with-nul",
        lambda tmp: database(password_file=str(write(tmp, "pw", b"pa\x00ss"))),
        "holds control characters (binary?)",
    ),
    (
        "nul-in-file-key",
        lambda tmp: database(password_file="/run/secrets/a\x00b"),
        "databases[0].password_file: must not contain NUL characters",
    ),
    (
        "over-long-path",
        lambda tmp: database(password_file="/" + "x/" * 3000),
        "databases[0].password_file: file name /x/x/x",
    ),
    (
        "over-long-path-part",
        lambda tmp: database(password_file="/" + "y" * 300),
        f"databases[0].password_file: file name /{'y' * 255}... has a part over 255 bytes",
    ),
    (
        "password-file-fifo",
        lambda tmp: database(password_file=str(fifo(tmp))),
        "databases[0].password_file: ",  # completed below with the path
    ),
    (
        "password-file-dev-zero",
        lambda tmp: database(password_file="/dev/zero"),
        "databases[0].password_file: /dev/zero is not a regular file",
    ),
    (
        "redis-ca-file-fifo",
        lambda tmp: yaml.safe_dump(
            {"redis": [{"name": "r", "url": "rediss://127.0.0.1:1", "ca_file": str(fifo(tmp))}]}
        ),
        "redis[0].ca_file: ",
    ),
    (
        "timeout-nan",
        lambda tmp: "scrape: {default_timeout_seconds: .nan}",
        "scrape.default_timeout_seconds: must be a finite number, got nan",
    ),
    (
        "timeout-inf",
        lambda tmp: "scrape: {max_timeout_seconds: .inf}",
        "scrape.max_timeout_seconds: must be a finite number, got inf",
    ),
    (
        "timeout-negative",
        lambda tmp: "scrape: {default_timeout_seconds: -1}",
        "scrape.default_timeout_seconds: must be greater than 0, got -1.0",
    ),
    (
        "offset-nan",
        lambda tmp: "scrape: {timeout_offset_seconds: .nan}",
        "scrape.timeout_offset_seconds: must be a finite number, got nan",
    ),
    (
        "tls-cert-not-a-cert",
        lambda tmp: yaml.safe_dump(
            {
                "web": {
                    "tls_cert_file": str(write(tmp, "c.pem", b"not a certificate\n")),
                    "tls_key_file": str(write(tmp, "k.pem", b"not a key\n")),
                }
            }
        ),
        "web.tls_cert_file: no PEM certificate in",
    ),
    (
        "tls-key-not-the-key",
        certificate_as_key,
        "is not a PEM private key for tls_cert_file",
    ),
    (
        "sql-scheme-oracle",
        lambda tmp: database(url="oracle://app@127.0.0.1/app"),
        "databases[0].url: unsupported dialect (supported: postgresql, mysql, mariadb, sqlite)",
    ),
    (
        "sql-scheme-mongodb",
        lambda tmp: database(url="mongodb+srv://app@cluster/app"),
        "databases[0].url: unsupported dialect",
    ),
    (
        "sql-driver-asyncpg",
        lambda tmp: database(url="postgresql+asyncpg://app@127.0.0.1/app"),
        "databases[0].url: unsupported driver for postgresql (use postgresql+psycopg)",
    ),
]


def build_case(tmp: Path, build) -> Path:
    content = build(tmp)
    path = tmp / "exporter.yml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_config_exits_2_naming_the_problem(tmp_path, build, expected):
    path = build_case(tmp_path, build)
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # a FIFO or /dev/zero must not hang it
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert "secret" not in result.stderr  # the bearer token cases never echo the token


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_reload_refuses_it_and_keeps_the_old_config(tmp_path, build, expected):
    path = tmp_path / "exporter.yml"
    path.write_text(GOOD)
    exporter = Exporter(read_config(path))
    build_case(tmp_path, build)

    async def reload():
        return await asyncio.wait_for(exporter.reload(), timeout=20)

    try:
        with pytest.raises(ConfigError) as info:
            asyncio.run(reload())
    finally:
        exporter.loaded.engine.close()
    assert expected in str(info.value)
    assert exporter.config.scrape.default_timeout_seconds == 7.0
    assert exporter.last_reload_ok is False


def test_fifo_and_device_messages_name_the_file(tmp_path):
    pipe = fifo(tmp_path)
    found = [
        str(p)
        for p in _problems(tmp_path, database(password_file=str(pipe)))
        + _problems(tmp_path, model_server(ca_file=str(pipe)))
    ]
    assert found == [
        f"databases[0].password_file: {pipe} is not a regular file",
        f"model_servers[0].ca_file: {pipe} is not a regular file",
    ]


def _problems(tmp: Path, text: str) -> list[str]:
    path = tmp / "exporter.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_config(path)
    return info.value.problems


def test_a_big_password_file_is_refused_without_reading_it_all(tmp_path):
    big = tmp_path / "big"
    with big.open("wb") as out:
        out.truncate(1 << 30)  # a 1 GiB sparse file: nothing to read if its size is checked
    found = _problems(tmp_path, database(password_file=str(big)))
    assert found == [f"databases[0].password_file: {big} is larger than 65536 bytes"]


def test_good_tls_pair_and_header_values_still_load(tmp_path):
    cert, key = self_signed(tmp_path)
    token = write(tmp_path, "token", b"abc.DEF-123_~+/=\n")
    path = tmp_path / "exporter.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "web": {"tls_cert_file": str(cert), "tls_key_file": str(key)},
                "model_servers": [
                    {
                        "name": "m",
                        "url": "http://127.0.0.1:1",
                        "headers": {"X-Api-Key": "k\tv ~!", "Host": "gw.example"},
                        "bearer_token_file": str(token),
                    }
                ],
            }
        )
    )
    config = read_config(path)
    (target,) = config.targets["model_servers"]
    assert target.bearer_token.reveal() == "abc.DEF-123_~+/="
    assert dict(target.headers) == {"X-Api-Key": "k\tv ~!", "Host": "gw.example"}


def test_check_config_of_2000_targets_builds_no_client_and_opens_no_socket(
    tmp_path, monkeypatch, capsys
):
    """No target of any kind gets a client or a socket; 2,000 prove that as 10,000 would (how
    long 10,000 take is `benchmarks/model_servers.py --build-targets 10000`)."""
    entries = [{"name": f"m{i}", "url": f"http://127.0.0.1:{1 + i}"} for i in range(1900)]
    redis = [{"name": f"r{i}", "url": f"redis://127.0.0.1:{1 + i}"} for i in range(50)]
    databases = [{"name": f"d{i}", "url": DB} for i in range(50)]
    path = tmp_path / "big.yml"
    path.write_text(
        yaml.safe_dump({"model_servers": entries, "redis": redis, "databases": databases})
    )
    made: list[str] = []
    real_client_init, real_connect = httpx.Client.__init__, socket.socket.connect

    def counting_client(self, *args, **kwargs):
        made.append("httpx.Client")
        real_client_init(self, *args, **kwargs)

    def counting_connect(self, *args, **kwargs):
        made.append("connect")
        return real_connect(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", counting_client)
    monkeypatch.setattr(socket.socket, "connect", counting_connect)
    started = time.perf_counter()
    code = main(["check-config", str(path)])
    elapsed = time.perf_counter() - started
    out = capsys.readouterr().out
    assert code == 0
    assert "OK (2002 targets; collectors: database, model_servers, process, redis, system)" in out
    assert made == []
    with capsys.disabled():
        print(f"\ncheck-config of 2,000 targets: {elapsed:.2f} s in-process")
