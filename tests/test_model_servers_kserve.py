"""The `kserve` preset against a real KServe Python model server (its ModelServer with a custom
model class, `tests/kserve_model.py`), run from its own environment `.venv-kserve`: `kserve`
pins psutil below 6, so it cannot share the exporter's test environment (`make kserve-env`
builds it; `make test` does that first)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import Histogram

from tests.model_server_apps import (
    make_collector_fixture,  # noqa: F401 - the make_collector fixture
    scrape,
    value,
)
from tests.support import ROOT, free_port, samples_of, server_process, unavailable

pytestmark = pytest.mark.slow

MODEL = "fir-summarizer"
KSERVE_PYTHON = Path(os.environ.get("AFIRGEN_KSERVE_PYTHON", ROOT / ".venv-kserve/bin/python"))


@pytest.fixture(scope="module")
def kserve(tmp_path_factory) -> Iterator[str]:
    if not KSERVE_PYTHON.exists():
        unavailable(f"no KServe environment at {KSERVE_PYTHON} (make kserve-env)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("kserve") / "kserve.log"
    args = [str(KSERVE_PYTHON), str(ROOT / "tests" / "kserve_model.py"), str(port)]
    with server_process(args, log, f"{url}/v2/health/ready"):
        yield url


def predict(url: str, instances: list[str]) -> int:
    answer = httpx.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": instances})
    return answer.status_code


def test_kserve_preset_reads_a_real_kserve_server(kserve, make_collector):
    collector = make_collector(
        {"name": "kserve-real", "kind": "kserve", "url": kserve, "models": [MODEL]}
    )
    result, registry = scrape(collector)
    assert result.success, result.reason
    labels = {"server": "kserve-real"}
    assert value(registry, "model_server_up", **labels) == 1.0
    assert value(registry, "model_server_availability", **labels) == 1.0
    assert value(registry, "model_server_model_ready", model=MODEL, **labels) == 1.0
    assert value(registry, "model_server_metrics_up", **labels) == 1.0
    versions = [s.labels["version"] for s in samples_of(result.families, "model_server_info")]
    assert versions and versions[0]  # KServe's own version from GET /v2
    before = value(registry, "model_server_latency_seconds_count", model=MODEL, **labels) or 0.0

    assert [predict(kserve, ["a", "bb"]) for _ in range(5)] == [200] * 5
    assert [predict(kserve, ["fail"]) for _ in range(2)] == [500] * 2
    result, registry = scrape(collector)
    count = value(registry, "model_server_latency_seconds_count", model=MODEL, **labels)
    assert count - before == 7  # KServe times every predict step, failed ones too
    bounds = [b for b in Histogram.DEFAULT_BUCKETS if math.isfinite(b)]
    buckets = [
        value(registry, "model_server_latency_seconds_bucket", model=MODEL, le=repr(b), **labels)
        for b in bounds
    ]
    assert None not in buckets and buckets == sorted(buckets)  # its own buckets, cumulative
    assert value(registry, "model_server_latency_seconds_sum", model=MODEL, **labels) > 0
    # KServe's Python server keeps no outcome counters: none are invented
    assert (
        value(registry, "model_server_requests_total", model=MODEL, status="success", **labels)
        is None
    )  # noqa: E501

    assert [predict(kserve, ["c"]) for _ in range(3)] == [200] * 3
    _, registry = scrape(collector)
    again = value(registry, "model_server_latency_seconds_count", model=MODEL, **labels)
    assert again - count == 3
