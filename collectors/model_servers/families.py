"""Every family the model-server collector serves, declared once, and how they are filled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from collectors.specs import FamilySet, MetricSpec, counter, gauge, histogram

#: Upper bounds of `model_server_probe_duration_seconds`, 5 ms to 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LATENCY_LE = tuple(repr(float(b)) for b in LATENCY_BUCKETS)  # as `le` label values

#: Every value of the `status` label of `model_server_probe_requests_total`: the HTTP status
#: class of an answer, `body_mismatch` for an answer whose body is not what the API documents,
#: or why no answer came.
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
PROBE_REQUESTS = counter("model_server_probe_requests_total", "The exporter's own probe requests to the model server by outcome: HTTP status class, body_mismatch, or timeout/refused/tls/connection when no answer came (not inference traffic).", ("server", "status"), source="measured, since the exporter started")  # noqa: E501
PROBE_DURATION = histogram("model_server_probe_duration_seconds", "Latency of the exporter's own probe requests the model server answered, since the exporter started (not inference latency).", _SERVER, unit="seconds", source="measured; buckets 5 ms to 10 s")  # noqa: E501
METRICS_UP = gauge("model_server_metrics_up", "1 if the engine's own metrics endpoint was read and parsed in this scrape (kinds that have one).", _SERVER, source="the engine's metrics endpoint")  # noqa: E501
REQUESTS = counter("model_server_requests_total", "Inference requests the engine reports, by outcome (success or failure).", ("server", "model", "status"), source="the engine's metrics endpoint, or the app's own calls (embedded)")  # noqa: E501
LATENCY = histogram("model_server_latency_seconds", "End-to-end inference request latency the engine reports (its buckets; sum and count only where it keeps duration counters).", _MODEL, unit="seconds", source="the engine's metrics endpoint, or the app's own calls (embedded)")  # noqa: E501
TTFT = histogram("model_server_time_to_first_token_seconds", "Time to the first generated token, as the engine reports it (its buckets).", _MODEL, unit="seconds", source="the engine's metrics endpoint")  # noqa: E501
RUNNING = gauge("model_server_requests_running", "Requests the engine is running now (in its current batch).", _MODEL, source="the engine's metrics endpoint")  # noqa: E501
WAITING = gauge("model_server_requests_waiting", "Requests waiting in the engine's queue now.", _MODEL, source="the engine's metrics endpoint")  # noqa: E501
TOKENS = counter("model_server_tokens_total", "Tokens the engine processed: prompt (prefill) or generation.", ("server", "model", "kind"), source="the engine's metrics endpoint")  # noqa: E501
KV_CACHE = gauge("model_server_kv_cache_usage_ratio", "Share of the engine's KV cache in use, 0 to 1.", _MODEL, unit="ratio", source="the engine's metrics endpoint")  # noqa: E501
# fmt: on

SPECS: tuple[MetricSpec, ...] = (
    UP,
    AVAILABILITY,
    MODEL_READY,
    MODEL_LOADED,
    INFO,
    PROBE_REQUESTS,
    PROBE_DURATION,
    METRICS_UP,
    REQUESTS,
    LATENCY,
    TTFT,
    RUNNING,
    WAITING,
    TOKENS,
    KV_CACHE,
)


@dataclass
class Totals:
    """What accumulates across scrapes: probe requests by outcome and their latency histogram."""

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
        """The probe counters (every status, from the first scrape) and the histogram."""
        for status in STATUSES:
            families.add(PROBE_REQUESTS, self.requests[status], status)
        buckets = list(zip(_LATENCY_LE, self.buckets, strict=True))
        buckets.append(("+Inf", self.count))
        families.histogram(PROBE_DURATION, buckets, self.total)


def models(families: FamilySet, spec: MetricSpec, values: Mapping[str, float]) -> None:
    """One sample per model, sorted by name; the family is served even when empty."""
    families.get(spec)
    for model, value in sorted(values.items()):
        families.add(spec, value, model)


def down(
    server: str, configured: tuple[str, ...], totals: Totals, engine_metrics: bool = False
) -> list[Metric]:
    """Unreachable: up and availability 0, configured models 0, the accumulated counts (and
    the engine's page not read, for presets that have one)."""
    families = FamilySet(server)
    families.add(UP, 0.0)
    families.add(AVAILABILITY, 0.0)
    if engine_metrics:
        families.add(METRICS_UP, 0.0)
    if configured:
        models(families, MODEL_READY, dict.fromkeys(configured, 0.0))
    totals.fill(families)
    return families.families()
