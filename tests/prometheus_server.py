"""A real Prometheus server on a loopback port, for tests that need one."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import free_port, require_binary, server_process


def scrape_one(url: str, metrics_path: str = "/prometheus/metrics") -> dict[str, Any]:
    """A config scraping one loopback target every second (`url` as `http://host:port`)."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "embedded",
                "metrics_path": metrics_path,
                "static_configs": [{"targets": [url.removeprefix("http://")]}],
            }
        ],
    }


class PrometheusServer:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def targets(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/targets", timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/alerts", timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["alerts"])


@contextlib.contextmanager
def prometheus_server(
    config: dict[str, Any],
    workdir: Path,
    *,
    check_config: bool = False,
    flags: tuple[str, ...] = (),
) -> Iterator[PrometheusServer]:
    """Start `prometheus` with `config` (a dict) on a free loopback port; stop it after.

    With `check_config`, `promtool check config` must accept the file first; `flags` are
    more command-line flags (`--enable-feature=native-histograms`).
    """
    binary = require_binary("prometheus")
    port = free_port()
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    if check_config:
        check = subprocess.run(
            [require_binary("promtool"), "check", "config", str(config_file)],
            capture_output=True,
        )
        assert check.returncode == 0, check.stderr.decode()
    url = f"http://127.0.0.1:{port}"
    args = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        *flags,
    ]
    with server_process(args, workdir / "prometheus.log", f"{url}/-/ready"):
        try:
            yield PrometheusServer(url)
        finally:  # the clean way out first; server_process signals it if that fails
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{url}/-/quit", timeout=5)
