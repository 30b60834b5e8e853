"""End to end: the scale-out deployment of docs/deployment.md, with real VictoriaMetrics tools.

Two exporter replicas (the same config: six SQLite databases, which need no server) are
scraped by two vmagents that share the shipped `deploy/victoriametrics/vmagent.yml` and split
the targets with `-promscrape.cluster.membersCount=2 -promscrape.cluster.memberNum=I`; the
probes are spread over the replicas by the config's hashmod relabelling. Both vmagents
remote-write into one VictoriaMetrics, and vmalert evaluates the shipped rule files against it
(notifying a real Alertmanager: vmalert 1.79 needs one). The test proves that every target lands
exactly once (each vmagent marks what it writes with `-remoteWrite.label=vmagent=I`, so a target
scraped by both would show up twice) and that the recording rules produce series.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import (
    ROOT,
    exporter_process,
    free_port,
    instant_query,
    require_binary,
    server_process,
    silent_alertmanager_config,
    wait_until,
)

pytestmark = pytest.mark.slow

VMAGENT_EXAMPLE = ROOT / "deploy" / "victoriametrics" / "vmagent.yml"
RULE_FILES = [ROOT / "alerts" / "afirgen.rules.yml", ROOT / "alerts" / "afirgen.alerts.yml"]
DATABASES = [f"shard-{letter}" for letter in "abcdef"]
MEMBERS = 2


def exporter_config(directory: Path) -> dict[str, Any]:
    databases = []
    for name in DATABASES:
        path = directory / f"{name}.db"
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE afx_scale_out (id INTEGER PRIMARY KEY)")
            db.commit()
        databases.append({"name": name, "url": f"sqlite:///{path}"})
    return {"databases": databases}


def vmagent_config(replicas: list[str]) -> dict[str, Any]:
    """The shipped vmagent config, pointed at this test's replicas, with 1 s intervals."""
    config = yaml.safe_load(VMAGENT_EXAMPLE.read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
    replica_by_shard = iter(replicas)
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            assert len(static["targets"]) == len(replicas)
            static["targets"] = replicas
        for sd in job.get("http_sd_configs", []):
            sd["url"] = f"http://{replicas[0]}/sd"
        for relabel in job.get("relabel_configs", []):
            if relabel.get("action") == "hashmod":
                assert relabel["modulus"] == len(replicas)
            if relabel.get("target_label") == "__address__":
                relabel["replacement"] = next(replica_by_shard)
    assert next(replica_by_shard, None) is None, "one __address__ rule per replica"
    return config


def landed(vm_url: str, expr: str) -> dict[tuple[str, str], list[str]]:
    """(job, instance) -> the vmagents whose writes carry that series."""
    found: dict[tuple[str, str], list[str]] = {}
    for series in instant_query(vm_url, expr):
        labels = series["metric"]
        found.setdefault((labels["job"], labels["instance"]), []).append(labels["vmagent"])
    return found


def active_targets(vmagent_url: str) -> set[tuple[str, str]]:
    response = httpx.get(f"{vmagent_url}/api/v1/targets", timeout=5)
    response.raise_for_status()
    return {
        (t["labels"]["job"], t["labels"]["instance"])
        for t in response.json()["data"]["activeTargets"]
    }


@contextlib.contextmanager
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Replicas, Alertmanager, VictoriaMetrics, two vmagents and vmalert; yields their URLs."""
    binaries = {
        name: require_binary(name)
        for name in ("victoria-metrics", "vmagent", "vmalert", "prometheus-alertmanager")
    }
    config_file = tmp_path / "exporter.yml"
    config_file.write_text(yaml.safe_dump(exporter_config(tmp_path)))
    with contextlib.ExitStack() as started:
        replicas = [started.enter_context(exporter_process(config_file)) for _ in range(2)]
        addresses = [url.removeprefix("http://") for url in replicas]

        am_port, vm_port = free_port(), free_port()
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(silent_alertmanager_config()))
        am_url = f"http://127.0.0.1:{am_port}"
        args = [
            binaries["prometheus-alertmanager"],
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ]
        started.enter_context(server_process(args, tmp_path / "am.log", f"{am_url}/-/ready"))

        vm_url = f"http://127.0.0.1:{vm_port}"
        args = [
            binaries["victoria-metrics"],
            f"-httpListenAddr=127.0.0.1:{vm_port}",
            f"-storageDataPath={tmp_path / 'vm-data'}",
            "-retentionPeriod=1d",
            "-search.latencyOffset=1s",  # the default 30 s hides the freshest samples
            "-search.disableCache",
        ]
        started.enter_context(server_process(args, tmp_path / "vm.log", f"{vm_url}/health"))

        (tmp_path / "vmagent.yml").write_text(yaml.safe_dump(vmagent_config(addresses)))
        vmagents = []
        for member in range(MEMBERS):
            port = free_port()
            args = [
                binaries["vmagent"],
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-promscrape.config={tmp_path / 'vmagent.yml'}",
                f"-promscrape.cluster.membersCount={MEMBERS}",
                f"-promscrape.cluster.memberNum={member}",
                "-promscrape.httpSDCheckInterval=1s",
                f"-remoteWrite.url={vm_url}/api/v1/write",
                f"-remoteWrite.tmpDataPath={tmp_path / f'vmagent-{member}'}",
                "-remoteWrite.flushInterval=1s",
                f"-remoteWrite.label=vmagent={member}",
            ]
            url = f"http://127.0.0.1:{port}"
            log = tmp_path / f"vmagent-{member}.log"
            started.enter_context(server_process(args, log, f"{url}/health"))
            vmagents.append(url)

        vmalert_port = free_port()
        vmalert_url = f"http://127.0.0.1:{vmalert_port}"
        args = [
            binaries["vmalert"],
            f"-httpListenAddr=127.0.0.1:{vmalert_port}",
            f"-datasource.url={vm_url}",
            f"-remoteWrite.url={vm_url}",
            f"-notifier.url={am_url}",
            "-evaluationInterval=1s",
            *(f"-rule={path}" for path in RULE_FILES),
        ]
        log = tmp_path / "vmalert.log"
        started.enter_context(server_process(args, log, f"{vmalert_url}/health"))
        yield {"replicas": addresses, "vm": vm_url, "vmagents": vmagents, "vmalert": vmalert_url}


def test_two_sharded_vmagents_land_every_target_once_and_vmalert_records(tmp_path: Path):
    with stack(tmp_path) as urls:
        vm = urls["vm"]
        expected = {("afirgen", address) for address in urls["replicas"]}
        expected |= {("afirgen-probe", name) for name in DATABASES}

        # the vmagents split the targets: together all of them, none twice
        shares = wait_until(
            lambda: (
                (s := [active_targets(u) for u in urls["vmagents"]])
                and set().union(*s) == expected
                and s
            ),
            timeout=30,
            what="the two vmagents to discover every target between them",
        )
        assert shares[0] & shares[1] == set()
        assert sum(len(share) for share in shares) == len(expected)

        # in VictoriaMetrics: every target up, each written by exactly one vmagent
        ups = wait_until(
            lambda: (found := landed(vm, "up == 1")) and set(found) == expected and found,
            timeout=40,
            what="every target's `up` to land in VictoriaMetrics",
        )
        owner = {target: str(member) for member, share in enumerate(shares) for target in share}
        assert ups == {target: [owner[target]] for target in expected}
        databases = landed(vm, 'db_up{job="afirgen-probe"} == 1')
        assert databases == {
            ("afirgen-probe", name): [owner[("afirgen-probe", name)]] for name in DATABASES
        }
        # every database was probed through one replica or the other, and only once
        success = instant_query(vm, 'afirgen_exporter_collector_success{collector="database"}')
        assert sorted(s["metric"]["target"] for s in success) == DATABASES

        # vmalert loaded every group of the shipped files and its recording rules write series
        groups = httpx.get(f"{urls['vmalert']}/api/v1/rules", timeout=5).json()["data"]["groups"]
        shipped = [
            g["name"] for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]
        ]
        assert sorted(g["name"] for g in groups) == sorted(shipped)
        pools = wait_until(
            lambda: (
                (r := instant_query(vm, "job_database:db_connection_pool_checked_out:ratio"))
                and len(r) == len(DATABASES)
                and r
            ),
            timeout=40,
            what="vmalert's pool-utilisation recording rule to write a series per database",
        )
        assert sorted(p["metric"]["database"] for p in pools) == DATABASES
        assert {p["value"][1] for p in pools} == {"0"}  # nothing checks connections out
        cpu = wait_until(
            lambda: (
                (r := instant_query(vm, "job_instance:system_cpu_utilisation:rate5m"))
                and len(r) == len(urls["replicas"])
                and r
            ),
            timeout=40,
            what="the host CPU recording rule to write a series per replica",
        )
        assert {c["metric"]["instance"] for c in cpu} == set(urls["replicas"])
        assert all(0 <= float(c["value"][1]) <= 1 for c in cpu)
