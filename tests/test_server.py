"""exporter/server.py: the standalone process as an operator and an attacker meet it.

Real exporter processes on loopback ports: what they log at start and stop, what a failed bind
says, and that a request's X-Forwarded-For does not change who the client is.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import yaml

from tests.support import ROOT, free_port, wait_until


def run_exporter(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "exporter", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class Served:
    url: str
    stderr: str = ""  # what the process wrote, once it has stopped


@contextlib.contextmanager
def serving(*args: str) -> Iterator[Served]:
    """An exporter process on a free port, once it answers HTTP; SIGTERM (and wait) after."""
    port = free_port()
    served = Served(f"http://127.0.0.1:{port}")
    proc = run_exporter("--web.listen-address", f"127.0.0.1:{port}", *args)
    try:
        wait_until(
            lambda: proc.poll() is None and httpx.get(f"{served.url}/-/healthy").status_code,
            timeout=20,
            what="the exporter to answer HTTP",
        )
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        _, served.stderr = proc.communicate(timeout=20)


def test_start_and_stop_say_one_line_each_in_the_exporters_format():
    with serving() as served:
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
        proc = run_exporter("--web.listen-address", f"127.0.0.1:{port}")
        _, stderr = proc.communicate(timeout=20)
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
    with serving("--config", str(config)) as served:
        codes = [
            httpx.get(
                f"{served.url}/-/healthy",
                auth=("prom", f"wrong-{i}"),
                headers={"X-Forwarded-For": f"10.0.0.{i}"},
            ).status_code
            for i in range(5)
        ]
    assert codes == [401, 401, 429, 429, 429]
