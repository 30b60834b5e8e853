"""The real Prometheus tooling on the exporter's real output: promtool lint and a live scrape."""

from __future__ import annotations

import subprocess

import httpx

from tests.prometheus_server import prometheus_server
from tests.support import exporter_process, require_binary, wait_until


def test_promtool_check_metrics_finds_nothing_to_lint():
    promtool = require_binary("promtool")
    with exporter_process() as url:
        httpx.get(f"{url}/metrics")  # a second scrape: CPU percent over an interval
        body = httpx.get(f"{url}/metrics", headers={"Accept": "text/plain"}).content
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


def test_real_prometheus_scrapes_the_exporter(tmp_path):
    with exporter_process() as url:
        address = url.removeprefix("http://")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "afirgen", "static_configs": [{"targets": [address]}]}],
        }
        with prometheus_server(config, tmp_path) as prometheus:

            def target_up():
                targets = prometheus.targets()
                return targets and targets[0]["health"] == "up" and targets

            targets = wait_until(target_up, timeout=30, what="the exporter target to be up")
            assert targets[0]["scrapeUrl"] == f"{url}/metrics"
            result = wait_until(
                lambda: prometheus.query('system_cpu_percent{job="afirgen"}'),
                timeout=30,
                what="system_cpu_percent to be queryable",
            )
            value = float(result[0]["value"][1])
            assert 0.0 <= value <= 100.0
            success = prometheus.query("min(afirgen_exporter_collector_success)")
            assert float(success[0]["value"][1]) == 1.0
