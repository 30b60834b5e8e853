"""Every family the model-server collector serves, declared once, and how they are filled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from collectors.specs import FamilySet, MetricSpec, counter, gauge, histogram

#: Upper bounds of `model_server_latency_seconds`, 5 ms to 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Every value of the `status` label of `model_server_requests_total`: the HTTP status class of
#: an answer, `body_mismatch` for an answer whose body is not what the API documents, or why no
#: answer came.
STATUSES = ("2xx", "3xx", "4xx", "5xx", "body_mismatch", "timeout", "refused", "tls", "connection")
TRANSPORT_FAILURES = ("timeout", "refused", "tls", "connection")

_SERVER = ("server",)
_MODEL = ("server", "model")

# fmt: off
UP = gauge("model_server_up", "1 if the model server answered its liveness endpoint over HTTP in this scrape.", _SERVER, source="liveness endpoint")  # noqa: E501
AVAILABILITY = gauge("model_server_availability", "1 if the model server and every configured model are ready to serve, else 0.", _SERVER, source="the preset's ready checks")  # noqa: E501
MODEL_READY = gauge("model_server_model_ready", "1 if the model is ready for inference (as the server's API reports it).", _MODEL, source="per-model endpoint or model list")  # noqa: E501
MODEL_LOADED = gauge("model_server_model_loaded", "1 if Ollama has the model loaded in memory (/api/ps).", _MODEL, source="Ollama /api/ps")  # noqa: E501
INFO = gauge("model_server_info", "The model server's kind (preset) and version as it reports it; value 1.", ("server", "kind", "version"), source="metadata endpoint (version \"\" when unknown)")  # noqa: E501
PROBE_DURATION = gauge("model_server_probe_duration_seconds", "Time this scrape's probe of the model server took (all its requests).", _SERVER, unit="seconds", source="measured")  # noqa: E501
REQUESTS = counter("model_server_requests_total", "Probe requests to the model server by outcome: HTTP status class, body_mismatch, or timeout/refused/tls/connection when no answer came.", ("server", "status"), source="measured, since the exporter started")  # noqa: E501
LATENCY = histogram("model_server_latency_seconds", "Latency of the probe requests the model server answered, since the exporter started.", _SERVER, unit="seconds", source="measured; buckets 5 ms to 10 s")  # noqa: E501
# fmt: on

SPECS: tuple[MetricSpec, ...] = (
    UP,
    AVAILABILITY,
    MODEL_READY,
    MODEL_LOADED,
    INFO,
    PROBE_DURATION,
    REQUESTS,
    LATENCY,
)


@dataclass
class Totals:
    """What accumulates across scrapes: requests by outcome and the latency histogram."""

    requests: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0.0))
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(LATENCY_BUCKETS))
    count: float = 0.0
    total: float = 0.0

    def add(self, outcomes: list[str], latencies: list[float]) -> None:
        for outcome in outcomes:
            self.requests[outcome] += 1
        for seconds in latencies:
            self.count += 1
            self.total += seconds
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1

    def copy(self) -> Totals:
        return Totals(dict(self.requests), list(self.buckets), self.count, self.total)

    def fill(self, families: FamilySet) -> None:
        """The request counters (every status, from the first scrape) and the histogram."""
        for status in STATUSES:
            families.add(REQUESTS, self.requests[status], status)
        buckets = [(repr(float(b)), c) for b, c in zip(LATENCY_BUCKETS, self.buckets, strict=True)]
        buckets.append(("+Inf", self.count))
        families.histogram(LATENCY, buckets, self.total)


def models(families: FamilySet, spec: MetricSpec, values: Mapping[str, float]) -> None:
    """One sample per model, sorted by name; the family is served even when empty."""
    families.get(spec)
    for model, value in sorted(values.items()):
        families.add(spec, value, model)


def down(server: str, configured: tuple[str, ...], totals: Totals) -> list[Metric]:
    """Unreachable: up and availability 0, configured models 0, the accumulated counts."""
    families = FamilySet(server)
    families.add(UP, 0.0)
    families.add(AVAILABILITY, 0.0)
    if configured:
        models(families, MODEL_READY, dict.fromkeys(configured, 0.0))
    totals.fill(families)
    return families.families()
