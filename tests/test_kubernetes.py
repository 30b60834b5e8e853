"""The Kubernetes manifests of deploy/kubernetes/: valid against the Kubernetes API schemas
(kubernetes-validate, strict: an unknown field is an error) and the prometheus-operator CRDs
(the JSON schema of cloudcoil's models generated from the operator's CRDs, made strict the same
way), hardened, wired to each other, and the PrometheusRule equal to the shipped rule files.
No cluster is needed."""

from __future__ import annotations

import copy
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> dict[str, dict[str, Any]]:
    """kind -> the object, over every manifest (one object per kind here)."""
    found: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, f"two {document['kind']} objects"
            found[document["kind"]] = document
    return found


def strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that lists properties:
    what kubectl's strict field validation does to custom resources. Go's `^(?i)...` patterns
    are written `(?i)^...`, the form Python's re (and so jsonschema) accepts."""
    if isinstance(schema, dict):
        tightened = {key: strict(value) for key, value in schema.items()}
        if "properties" in tightened and "additionalProperties" not in tightened:
            tightened["additionalProperties"] = False
        pattern = tightened.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):
            tightened["pattern"] = "(?i)^" + pattern.removeprefix("^(?i)")
        return tightened
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@cache
def operator_schema(kind: str) -> dict[str, Any]:
    from cloudcoil.models.prometheus_operator import v1

    schema: dict[str, Any] = strict(getattr(v1, kind).model_json_schema(by_alias=True))
    return schema


def validate(document: dict[str, Any]) -> None:
    if document["apiVersion"] == "monitoring.coreos.com/v1":
        schema = operator_schema(document["kind"])
        jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kind", sorted(documents()))
def test_validates_against_its_schema(kind: str):
    validate(documents()[kind])


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Deployment", ["spec", "template", "spec", "containers", 0, "livenessProbes"]),
        ("Service", ["spec", "ports", 0, "targetport"]),
        ("ServiceMonitor", ["spec", "endpoints", 0, "honorlabels"]),
        ("Probe", ["spec", "prober", "paths"]),
        ("PrometheusRule", ["spec", "groups", 0, "rules", 0, "recorded"]),
    ],
)
def test_the_validation_catches_a_misspelt_field(kind: str, path: list[Any]):
    document = copy.deepcopy(documents()[kind])
    node = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = "typo"
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        validate(document)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]


def test_the_pod_runs_hardened_with_probes_and_resources():
    pod = documents()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert all(m["readOnly"] for m in container["volumeMounts"] if m["name"] != "tmp")


def test_service_monitor_and_probe_reach_the_pods():
    docs = documents()
    deployment, service = docs["Deployment"], docs["Service"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in port_names
    monitor = docs["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] == service_port["name"] and endpoint["path"] == "/metrics"
    probe = docs["Probe"]["spec"]
    assert probe["prober"]["path"] == "/probe"
    name, port = probe["prober"]["url"].split(":")
    assert name.split(".")[0] == service["metadata"]["name"] and int(port) == service_port["port"]
    # the job names the rules select (job=~"afirgen.*") and the example configs use
    assert probe["jobName"] == "afirgen-probe"
    assert {"targetLabel": "job", "replacement": "afirgen"} in endpoint["relabelings"]


def exporter_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(documents()["ConfigMap"]["data"]["exporter.yml"])
    return config


def test_probe_targets_are_the_configured_targets():
    config = exporter_config()
    names = [
        entry["name"]
        for section in ("databases", "redis", "model_servers", "task_queues")
        for entry in config.get(section, [])
    ]
    static = documents()["Probe"]["spec"]["targets"]["staticConfig"]["static"]
    assert sorted(static) == sorted(names)


def test_the_configmap_is_a_valid_exporter_config(tmp_path: Path):
    """`afirgen-exporter check-config` accepts it (the secret file made up in a temp dir)."""
    text = documents()["ConfigMap"]["data"]["exporter.yml"]
    container = documents()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"--config={mounts['config']}/exporter.yml" in container["args"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db-password").write_text("not-a-real-password\n")
    config = tmp_path / "exporter.yml"
    config.write_text(text.replace(mounts["secrets"], str(secrets)))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    collectors = result.stdout.split("collectors: ", 1)[1].strip(")\n").split(", ")
    assert {"database", "redis", "model_servers", "task_queue"} <= set(collectors)


def test_prometheus_rule_holds_the_shipped_groups():
    rule = documents()["PrometheusRule"]
    shipped = [
        group
        for name in ("afirgen.rules.yml", "afirgen.alerts.yml")
        for group in yaml.safe_load((ROOT / "alerts" / name).read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == shipped
    assert (
        (KUBERNETES / "prometheusrule.yaml")
        .read_text()
        .startswith("# Generated by `python -m alerts.build`")
    )
