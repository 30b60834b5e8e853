"""End to end: exporter -> real Prometheus (the shipped rules and example scrape config) ->
real Alertmanager.

The exporter has a target of every collector kind (a private redis-server as the cache, the
machine's PostgreSQL, a model-server stand-in, an RQ queue), each discovered through /sd and
scraped through /probe. Stopping the Redis must bring AfirgenCacheDown to Alertmanager's API;
starting it again must resolve it. Prometheus runs the example config (including the /sd
discovery and /probe relabelling), with short intervals, and a copy of the shipped rules whose
`for` durations are shortened: the expressions, labels and annotations are the shipped ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.redis_server import RedisServer
from tests.support import (
    ROOT,
    exporter_process,
    free_port,
    instant_query,
    require_binary,
    require_service,
    serve_app,
    server_process,
    silent_alertmanager_config,
    wait_until,
)

pytestmark = pytest.mark.slow

ALERTS_DIR = ROOT / "alerts"
PROMETHEUS_EXAMPLE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
TEST_FOR = "2s"
REDIS_DB = 15


def write_rules_with_short_for(directory: Path) -> None:
    """The shipped rule files, with every `for` shortened so the test runs in seconds."""
    alerts = yaml.safe_load((ALERTS_DIR / "afirgen.alerts.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            rule["for"] = TEST_FOR
    (directory / "afirgen.alerts.yml").write_text(yaml.safe_dump(alerts, sort_keys=False))
    (directory / "afirgen.rules.yml").write_text((ALERTS_DIR / "afirgen.rules.yml").read_text())


def prometheus_config(exporter: str, alertmanager: str) -> dict[str, Any]:
    """The example scrape config pointed at this test's exporter and Alertmanager."""
    config = yaml.safe_load(PROMETHEUS_EXAMPLE.read_text())
    # the rule files with the short `for`, written beside the config
    config["rule_files"] = [Path(f).name for f in config["rule_files"]]
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [alertmanager]}]
    for job in config["scrape_configs"]:
        if "static_configs" in job:
            job["static_configs"] = [{"targets": [exporter]}]
        for sd in job.get("http_sd_configs", []):
            sd["url"] = f"http://{exporter}/sd"
            sd["refresh_interval"] = "1s"
        for relabel in job.get("relabel_configs", []):
            if relabel.get("target_label") == "__address__":
                relabel["replacement"] = exporter
    return config


def cache_down_alerts(alertmanager_url: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{alertmanager_url}/api/v2/alerts",
        params={"filter": ['alertname="AfirgenCacheDown"', 'instance="cache"'], "active": "true"},
        timeout=5,
    )
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


def exporter_config(redis_port: int, model_server_url: str) -> dict[str, Any]:
    """A target of every collector kind: the test's Redis, the machine's PostgreSQL, a model
    server stand-in and an RQ queue on the machine's Redis (read only, db 15)."""
    return {
        "redis": [{"name": "cache", "url": f"redis://127.0.0.1:{redis_port}/0"}],
        "databases": [{"name": "main", "url": "postgresql+psycopg://postgres@127.0.0.1:5432/test"}],
        "model_servers": [
            {"name": "llm", "kind": "kserve", "url": model_server_url, "models": ["fir-summarizer"]}
        ],
        "task_queues": [
            {
                "name": "jobs",
                "kind": "rq",
                "url": f"redis://127.0.0.1:6379/{REDIS_DB}",
                "queues": ["afx_e2e_jobs"],
            }
        ],
    }


#: One up gauge per collector kind, as Prometheus stores it after /sd and /probe relabelling.
PROBED_UP = {
    "redis": 'cache_up{job="afirgen-probe", instance="cache", cache="cache", collector="redis"}',
    "database": 'db_up{job="afirgen-probe", instance="main", collector="database"}',
    "model_servers": 'model_server_up{job="afirgen-probe", instance="llm", server="llm"}',
    "task_queue": 'background_tasks_up{job="afirgen-probe", instance="jobs", backend="jobs"}',
}


@contextlib.contextmanager
def monitoring(tmp_path: Path, exporter_config_file: Path) -> Iterator[tuple[str, str]]:
    """The exporter, Alertmanager and Prometheus, started in that order; yields the URLs of
    Prometheus and Alertmanager."""
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager")
    write_rules_with_short_for(tmp_path)
    am_port, prom_port = free_port(), free_port()
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(silent_alertmanager_config()))
    (tmp_path / "am-data").mkdir()
    am_url = f"http://127.0.0.1:{am_port}"
    prom_url = f"http://127.0.0.1:{prom_port}"
    with contextlib.ExitStack() as stack:
        exporter = stack.enter_context(exporter_process(exporter_config_file))
        (tmp_path / "prometheus.yml").write_text(
            yaml.safe_dump(
                prometheus_config(exporter.removeprefix("http://"), f"127.0.0.1:{am_port}")
            )
        )
        am_args = [
            alertmanager,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ]
        stack.enter_context(
            server_process(am_args, tmp_path / "alertmanager.log", f"{am_url}/-/ready")
        )
        prom_args = [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
        stack.enter_context(
            server_process(prom_args, tmp_path / "prometheus.log", f"{prom_url}/-/ready")
        )
        yield prom_url, am_url


def reads_up(prom_url: str, selector: str) -> bool:
    return [r["value"][1] for r in instant_query(prom_url, selector)] == ["1"]


def test_cache_down_alert_reaches_alertmanager_and_resolves(tmp_path: Path):
    require_service("PostgreSQL", 5432)
    require_service("Redis", 6379)
    from tests.model_server_apps import Behaviour, make_app

    redis = RedisServer(tmp_path)
    with contextlib.ExitStack() as stack:
        redis.start()
        stack.callback(redis.stop)
        model_server = stack.enter_context(serve_app(make_app("kserve", Behaviour())))
        config_file = tmp_path / "exporter.yml"
        config_file.write_text(yaml.safe_dump(exporter_config(redis.port, model_server)))
        prom_url, am_url = stack.enter_context(monitoring(tmp_path, config_file))

        # every target is found through /sd, probed through /probe and reads up
        for kind, up in PROBED_UP.items():
            wait_until(
                lambda up=up: reads_up(prom_url, up),
                timeout=40,
                what=f"Prometheus to scrape the {kind} target as up through /probe",
            )
        # the /metrics job of the example (collect[]=system&collect[]=process) works too
        wait_until(
            lambda: reads_up(prom_url, 'up{job="afirgen"}'),
            timeout=20,
            what="the exporter's own /metrics job to be up",
        )
        assert cache_down_alerts(am_url) == []

        redis.stop()
        alerts = wait_until(
            lambda: cache_down_alerts(am_url),
            timeout=40,
            what="AfirgenCacheDown to reach Alertmanager",
        )
        (alert,) = alerts
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["job"] == "afirgen-probe"
        assert alert["status"]["state"] == "active"
        assert alert["annotations"]["runbook_url"].endswith("#afirgencachedown")
        assert "Redis cache" in alert["annotations"]["description"]

        redis.start()
        wait_until(
            lambda: reads_up(prom_url, PROBED_UP["redis"]),
            timeout=40,
            what="the restarted Redis to read up again",
        )
        wait_until(
            lambda: cache_down_alerts(am_url) == [],
            timeout=40,
            what="AfirgenCacheDown to resolve in Alertmanager",
        )
