"""exporter/connections.py: half-open connections are closed, real scrapes keep answering.

Real sockets against uvicorn on loopback: in a thread for the protocol's own behaviour, and a
real exporter process with a low open-files limit for the slowloris that exhausted FDs.
"""

from __future__ import annotations

import resource
import socket
import time

import httpx
import pytest
import yaml

from exporter.app import create_app
from exporter.config import load_config
from exporter.connections import guarded_protocol
from exporter.server import connection_limit
from exporter.state import Exporter
from tests.slowloris import PARTIAL, Slowloris, open_fds
from tests.support import (
    ROOT,
    exporter_args,
    free_port,
    scrape_headers,
    serve_app,
    started_process,
    wait_until,
)
from tests.test_scrape import CountingCollector


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes `sock` within `within` seconds (EOF or reset)."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.fixture
def guarded():
    protocol = guarded_protocol(header_timeout=1.0, max_connections=50)
    slow = CountingCollector("slow", delay=2.0)
    exp = Exporter(load_config({}, env={}), extra_collectors=[slow])
    with serve_app(create_app(exp), http=protocol, timeout_keep_alive=30) as base:
        yield base, protocol
    exp.loaded.engine.close()


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def test_connections_that_never_finish_their_headers_are_closed(guarded):
    base, protocol = guarded
    silent, partial = connect(base), connect(base)
    partial.sendall(PARTIAL)
    assert closed_by_server(silent, within=5) and closed_by_server(partial, within=5)
    assert protocol.closed["header_timeout"] == 2
    silent.close()
    partial.close()


def test_a_kept_alive_connection_that_starts_a_request_and_stalls_is_closed(guarded):
    base, protocol = guarded
    sock = connect(base)
    sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    time.sleep(1.5)  # idle but kept alive: uvicorn's keep-alive timeout is 30 s here
    sock.sendall(PARTIAL)
    assert closed_by_server(sock, within=5)
    sock.close()


def test_a_request_whose_headers_arrived_is_not_cut_by_the_header_timeout(guarded):
    base, protocol = guarded
    response = httpx.get(f"{base}/metrics", params={"collect[]": "counting"}, timeout=10)
    assert response.status_code == 200 and "counting_value 42.0" in response.text
    assert protocol.closed.get("header_timeout", 0) == 0


def test_over_the_cap_the_oldest_half_open_connection_makes_room(guarded):
    base, protocol = guarded
    held = [connect(base) for _ in range(60)]
    wait_until(lambda: protocol.closed.get("over_limit", 0) >= 10, timeout=5, what="evictions")
    assert len(protocol.waiting) <= 50
    assert httpx.get(f"{base}/-/healthy", timeout=5).status_code == 200
    # the first ten were the oldest waiting: they are the ones closed
    assert all(closed_by_server(sock, within=2) for sock in held[:10])
    for sock in held:
        sock.close()


@pytest.mark.slow
def test_scrapes_keep_answering_while_5000_half_open_connections_are_held(tmp_path):
    raise_fd_limit(5000 + 1000)
    port = free_port()
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump({"web": {"header_timeout_seconds": 2}}))
    # 600 open files: without the guard, a few hundred half-open connections take them all
    fd_limit = 600
    base = f"http://127.0.0.1:{port}"
    with started_process(
        exporter_args(port, path, "--log.level", "error"),
        ready=lambda: httpx.get(f"{base}/-/healthy").status_code == 200,
        what="start",
        timeout=20,
        cwd=ROOT,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit)),
    ) as proc:
        codes, most_fds = [], 0
        with Slowloris(port, 5000) as attack:
            wait_until(lambda: attack.opened >= 5000, timeout=30, what="5000 connections")
            until = time.monotonic() + 6  # three header timeouts
            while time.monotonic() < until:
                for path_ in ("/metrics", "/-/healthy"):
                    response = httpx.get(
                        f"{base}{path_}",
                        headers=scrape_headers(5),
                        timeout=5,
                    )
                    codes.append(response.status_code)
                most_fds = max(most_fds, open_fds(proc.pid))
                time.sleep(0.2)
        assert proc.poll() is None
    assert codes and set(codes) == {200}, codes
    assert most_fds < fd_limit
    # every connection the server closed was closed within the header timeout (plus slack)
    assert attack.lifetimes and max(attack.lifetimes) < 2 + 2, sorted(attack.lifetimes)[-5:]
    assert attack.opened > 5000  # the attacker had to open new ones: the old ones were closed


def test_connection_limit_follows_the_open_files_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_limit(10) == 10
    limit = connection_limit(10**9)
    after, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert after == hard  # raised to the hard limit, as Go does
    assert limit == (10**9 if hard == resource.RLIM_INFINITY else hard - 128)
