"""The multi-target surface (/probe, /sd) of a real exporter process, scraped by a real Prometheus
with the relabelling one writes for blackbox_exporter, model servers on loopback as targets."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.model_server_apps import Behaviour, make_app
from tests.prometheus_server import PrometheusServer, prometheus_server
from tests.support import (
    exporter_process,
    free_port,
    scrape_url,
    serve_app,
    wait_until,
)

pytestmark = pytest.mark.slow

PROBED = ("llm", "kserve-main")


@pytest.fixture(scope="module")
def exporter(tmp_path_factory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("probe")
    with contextlib.ExitStack() as stack:
        vllm = stack.enter_context(serve_app(make_app("vllm", Behaviour())))
        kserve = stack.enter_context(serve_app(make_app("kserve", Behaviour())))
        slow = stack.enter_context(
            serve_app(
                make_app("generic", Behaviour(mode="slow", slow_seconds=3.0)),
                timeout_graceful_shutdown=1,
            )
        )
        config = {
            "collectors": {"system": {"enabled": False}},
            "model_servers": [
                {"name": "llm", "kind": "vllm", "url": vllm, "models": ["fir-summarizer"]},
                {"name": "kserve-main", "kind": "kserve", "url": kserve, "models": ["ner"]},
                {"name": "down", "kind": "tgi", "url": f"http://127.0.0.1:{free_port()}"},
                {"name": "slow", "url": f"{slow}/healthz", "timeout_seconds": 0.5},
            ],
        }
        config_file = directory / "exporter.yml"
        config_file.write_text(yaml.safe_dump(config))
        yield stack.enter_context(exporter_process(config_file))


def test_probe_serves_only_the_named_target(exporter):
    got = scrape_url(f"{exporter}/probe?target=llm")  # answers 200
    assert got[("probe_success", frozenset())] == 1.0
    assert got[("model_server_up", frozenset({("server", "llm")}))] == 1.0
    servers = {dict(labels).get("server") for name, labels in got if name.startswith("model_")}
    assert servers == {"llm"}


def test_probe_of_an_unreachable_server_answers_200_with_probe_success_zero(exporter):
    got = scrape_url(f"{exporter}/probe?target=down")  # answers 200
    assert got[("probe_success", frozenset())] == 0.0
    assert got[("model_server_up", frozenset({("server", "down")}))] == 0.0


def test_probe_applies_the_target_timeout_inside_the_scrape_deadline(exporter):
    # Prometheus allows 10 s; the target's own 0.5 s limit must win over the 3 s slow answer
    got = scrape_url(f"{exporter}/probe?target=slow", timeout_seconds=10)
    assert got[("probe_success", frozenset())] == 0.0
    assert got[("model_server_up", frozenset({("server", "slow")}))] == 0.0
    timeouts = frozenset({("server", "slow"), ("status", "timeout")})

    def counted() -> bool:
        # on a loaded machine the engine may answer a moment before the request is counted
        again = scrape_url(f"{exporter}/probe?target=slow", timeout_seconds=10)
        return again[("model_server_probe_requests_total", timeouts)] >= 1

    wait_until(counted, timeout=20, interval=0.2, what="the timed-out request to be counted")


@pytest.mark.parametrize("params", [{"target": "http://127.0.0.1:22"}, {"target": ""}, {}])
def test_probe_never_reaches_an_unconfigured_target(exporter, params):
    answer = httpx.get(f"{exporter}/probe", params=params)
    assert answer.status_code == 400
    assert "kserve-main" in answer.text and "llm" in answer.text and "down" in answer.text


def test_sd_lists_configured_targets_by_collector(exporter):
    answer = httpx.get(f"{exporter}/sd")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    groups = answer.json()
    by_collector = {g["labels"]["__meta_afirgen_collector"]: set(g["targets"]) for g in groups}
    assert by_collector == {"model_servers": {"llm", "kserve-main", "down", "slow"}}


def relabel(exporter_address: str) -> list[dict]:
    """blackbox_exporter style: the target name becomes ?target=, the exporter the address."""
    return [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": exporter_address},
    ]


@pytest.fixture(scope="module")
def prometheus(exporter, tmp_path_factory) -> Iterator[PrometheusServer]:
    directory = tmp_path_factory.mktemp("prometheus")
    address = exporter.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "model-servers",
                "metrics_path": "/probe",
                "static_configs": [{"targets": list(PROBED)}],
                "relabel_configs": relabel(address),
            },
            {
                "job_name": "discovered",
                "metrics_path": "/probe",
                "http_sd_configs": [{"url": f"{exporter}/sd", "refresh_interval": "5s"}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_afirgen_collector"],
                        "regex": "model_servers",
                        "action": "keep",
                    },
                    {"source_labels": ["__meta_afirgen_collector"], "target_label": "collector"},
                    *relabel(address),
                ],
            },
            {
                "job_name": "shard-0-of-2",
                "metrics_path": "/probe",
                "http_sd_configs": [{"url": f"{exporter}/sd", "refresh_interval": "5s"}],
                "relabel_configs": [
                    {
                        "source_labels": ["__address__"],
                        "modulus": 2,
                        "target_label": "__tmp_hash",
                        "action": "hashmod",
                    },
                    {"source_labels": ["__tmp_hash"], "regex": "0", "action": "keep"},
                    *relabel(address),
                ],
            },
        ],
    }
    with prometheus_server(config, directory, check_config=True) as server:
        yield server


def test_prometheus_scrapes_two_targets_through_probe(prometheus):
    def both_up() -> bool:
        targets = [t for t in prometheus.targets() if t["labels"]["job"] == "model-servers"]
        return len(targets) == 2 and all(t["health"] == "up" for t in targets)

    wait_until(both_up, timeout=30, interval=0.5, what="both /probe targets up")
    targets = [t for t in prometheus.targets() if t["labels"]["job"] == "model-servers"]
    assert {t["labels"]["instance"] for t in targets} == set(PROBED)
    for t in targets:
        assert "/probe?target=" in t["scrapeUrl"]

    def both_in_query() -> list[dict]:
        result = prometheus.query('model_server_availability{job="model-servers"}')
        return result if len(result) == 2 else []

    result = wait_until(both_in_query, timeout=30, interval=0.5, what="a query to see both")
    by_instance = {r["metric"]["instance"]: r["metric"]["server"] for r in result}
    assert by_instance == {"llm": "llm", "kserve-main": "kserve-main"}
    assert all(r["value"][1] == "1" for r in result)


def test_prometheus_discovers_targets_through_sd(prometheus):
    def discovered() -> list[dict]:
        result = prometheus.query('probe_success{job="discovered"}')
        return result if len(result) == 4 else []

    result = wait_until(discovered, timeout=30, interval=0.5, what="the /sd targets scraped")
    success = {r["metric"]["instance"]: r["value"][1] for r in result}
    assert success == {"llm": "1", "kserve-main": "1", "down": "0", "slow": "0"}
    assert {r["metric"]["collector"] for r in result} == {"model_servers"}


def shard(name: str, shards: int) -> int:
    """Prometheus' hashmod: the last 8 bytes of the MD5 of the value, big-endian, modulo."""
    return int.from_bytes(hashlib.md5(name.encode()).digest()[8:], "big") % shards


def test_prometheus_shards_discovered_targets_with_hashmod(prometheus):
    expected = {n for n in ("llm", "kserve-main", "down", "slow") if shard(n, 2) == 0}
    assert expected  # the fixture's names must put at least one target in shard 0

    def scraped() -> set[str]:
        targets = [t for t in prometheus.targets() if t["labels"]["job"] == "shard-0-of-2"]
        return {t["labels"]["instance"] for t in targets if t["health"] != "unknown"}

    assert wait_until(lambda: scraped() == expected, timeout=30, interval=0.5, what="shard 0")
