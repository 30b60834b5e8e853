"""exporter/server.py: the standalone process as an operator and an attacker meet it.

Real exporter processes on loopback ports: what they log at start and stop, what a failed bind
says, and that a request's X-Forwarded-For does not change who the client is.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import yaml

from tests.support import ROOT, exporter_args, free_port, started_process


@dataclass
class Served:
    url: str
    stderr: str = ""  # what the process wrote, once it has stopped


@contextlib.contextmanager
def serving(log: Path, *args: str) -> Iterator[Served]:
    """An exporter process on a free port, once it answers HTTP (any status: some configs
    want a password); SIGTERM (and wait) after, then what it wrote is in `stderr`."""
    port = free_port()
    served = Served(f"http://127.0.0.1:{port}")
    with started_process(
        exporter_args(port, None, *args),
        ready=lambda: httpx.get(f"{served.url}/-/healthy").status_code,
        what="the exporter to answer HTTP",
        log=log,
        timeout=20,
        stop_timeout=20,
        cwd=ROOT,
    ):
        yield served
    served.stderr = log.read_text()


def test_start_and_stop_say_one_line_each_in_the_exporters_format(tmp_path: Path):
    with serving(tmp_path / "exporter.log") as served:
        assert httpx.get(f"{served.url}/metrics").status_code == 200
    port = served.url.rpartition(":")[2]
    stderr = served.stderr
    lines = stderr.splitlines()
    assert len(lines) == 2, stderr
    assert lines[0].endswith(f" INFO afirgen_exporter listening on http://127.0.0.1:{port}")
    assert lines[1].endswith(" INFO afirgen_exporter stopped")


def test_a_port_in_use_is_an_error_and_never_announced_as_listening():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            exporter_args(port), cwd=ROOT, capture_output=True, text=True, timeout=20
        )
    stderr = proc.stderr
    assert proc.returncode != 0
    assert "listening on" not in stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert errors and "address already in use" in errors[0], stderr


def test_x_forwarded_for_does_not_buy_a_fresh_bcrypt_budget(tmp_path: Path):
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: each made-up address would get
    a budget of its own, and a local client could run bcrypt without limit."""
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "exporter.yml"
    web = {"basic_auth_users": {"prom": hashed}, "basic_auth_checks_burst": 2}
    config.write_text(yaml.safe_dump({"web": web}))
    with serving(tmp_path / "exporter.log", "--config", str(config)) as served:
        codes = [
            httpx.get(
                f"{served.url}/-/healthy",
                auth=("prom", f"wrong-{i}"),
                headers={"X-Forwarded-For": f"10.0.0.{i}"},
            ).status_code
            for i in range(5)
        ]
    assert codes == [401, 401, 429, 429, 429]
