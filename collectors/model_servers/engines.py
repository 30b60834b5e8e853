"""Which of each engine's own metric families make the normalised inference view, as data.

One `Read` per engine family: its name as the engine exposes it (written from the engine's
metrics documentation), what it becomes (`Into`), the label that holds the model name, and the
factor to base units. Adding a family an engine grows is one line here (and a line of its
stand-in's page in the tests). Families are matched with and without a `_total` suffix, since
prometheus_client appends one to counters and other libraries (TGI's Rust exporter) do not.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass


class Into(enum.StrEnum):
    """What an engine family becomes in the normalised view (a `str` enum: its members hash in
    C, and the page reader looks them up for every sample)."""

    SUCCESS = "success"  # counter: requests that succeeded
    FAILURE = "failure"  # counter: requests that failed
    LATENCY = "latency"  # histogram: end-to-end latency
    LATENCY_SUM = "latency_sum"  # counter: cumulative latency (Triton, TorchServe)
    LATENCY_COUNT = "latency_count"  # counter: requests that cumulative latency covers
    TTFT = "ttft"  # histogram: time to first token
    RUNNING = "running"  # gauge
    WAITING = "waiting"  # gauge
    PROMPT_TOKENS = "prompt"  # counter (or a histogram's sum, `part="sum"`)
    GENERATION_TOKENS = "generation"
    KV_CACHE = "kv_cache"  # gauge, 0-1: the largest over engines


HISTOGRAMS = frozenset({Into.LATENCY, Into.TTFT})

#: The model label of families that name none: the single model the page (or the probe) shows.
NO_MODEL_LABEL = None


@dataclass(frozen=True)
class Read:
    family: str
    into: Into
    #: the label holding the model's name; None: the server's single model
    model_label: str | None = "model_name"
    #: multiplies values (and histogram bounds) into base units: 1e-6 for microseconds
    scale: float = 1.0
    #: "sum" / "count": only that sample of a histogram or summary is read (TGI's token counts
    #: kept as histograms, MLServer's latency summary)
    part: str = ""
    #: which samples count (label filter), e.g. vLLM's HTTP counters of failed inference calls
    keep: Callable[[Mapping[str, str]], bool] | None = None


#: vLLM's OpenAI-compatible API routes that run inference (its HTTP counters also count
#: /health, /metrics, /v1/models...).
VLLM_INFERENCE_ROUTES = (
    "/v1/completions",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/score",
    "/v1/rerank",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/generate",
    "/pooling",
    "/classify",
    "/score",
    "/rerank",
    "/invocations",
)


def vllm_failed_call(labels: Mapping[str, str]) -> bool:
    """An inference route answered 4xx or 5xx (prometheus-fastapi-instrumentator groups the
    status as `4xx`; ungrouped codes `404` count too)."""
    return (
        labels.get("status", "")[:1] in ("4", "5")
        and labels.get("handler", "") in VLLM_INFERENCE_ROUTES
    )


# vLLM (docs: "Production Metrics"). v0 and v1 engines; v1 adds an `engine` label (summed).
VLLM = (
    Read("vllm:request_success_total", Into.SUCCESS),  # by finished_reason: summed
    Read("http_requests_total", Into.FAILURE, NO_MODEL_LABEL, keep=vllm_failed_call),
    Read("vllm:e2e_request_latency_seconds", Into.LATENCY),
    Read("vllm:time_to_first_token_seconds", Into.TTFT),
    Read("vllm:num_requests_running", Into.RUNNING),
    Read("vllm:num_requests_waiting", Into.WAITING),
    Read("vllm:prompt_tokens_total", Into.PROMPT_TOKENS),
    Read("vllm:generation_tokens_total", Into.GENERATION_TOKENS),
    Read("vllm:gpu_cache_usage_perc", Into.KV_CACHE),  # v0: 1 means 100 percent
    Read("vllm:kv_cache_usage_perc", Into.KV_CACHE),  # v1: 0-1
)

# Text Generation Inference (docs: "Metrics"): one model per server, no model label.
TGI = (
    Read("tgi_request_success", Into.SUCCESS, NO_MODEL_LABEL),
    Read("tgi_request_failure", Into.FAILURE, NO_MODEL_LABEL),  # by err: summed
    Read("tgi_request_duration", Into.LATENCY, NO_MODEL_LABEL),
    Read("tgi_batch_current_size", Into.RUNNING, NO_MODEL_LABEL),
    Read("tgi_queue_size", Into.WAITING, NO_MODEL_LABEL),
    Read("tgi_request_input_length", Into.PROMPT_TOKENS, NO_MODEL_LABEL, part="sum"),
    Read("tgi_request_generated_tokens", Into.GENERATION_TOKENS, NO_MODEL_LABEL, part="sum"),
)

# Triton (docs: "Metrics", port 8002): per model and version (versions summed); latency as
# cumulative microseconds; time to first response as a histogram in milliseconds when
# `--metrics-config histogram_latencies=true`.
TRITON = (
    Read("nv_inference_request_success", Into.SUCCESS, "model"),
    Read("nv_inference_request_failure", Into.FAILURE, "model"),
    Read("nv_inference_request_duration_us", Into.LATENCY_SUM, "model", scale=1e-6),
    Read("nv_inference_request_success", Into.LATENCY_COUNT, "model"),
    Read("nv_inference_first_response_histogram_ms", Into.TTFT, "model", scale=1e-3),
    Read("nv_inference_pending_request_count", Into.WAITING, "model"),
)

# TorchServe (docs: "TorchServe Metrics", metrics API on port 8082, `metrics_mode:
# prometheus`): requests and cumulative latency per model; 4xx/5xx per host only.
TORCHSERVE = (
    Read("ts_inference_requests_total", Into.SUCCESS),
    Read("Requests4XX", Into.FAILURE, NO_MODEL_LABEL),
    Read("Requests5XX", Into.FAILURE, NO_MODEL_LABEL),
    Read("ts_inference_latency_microseconds", Into.LATENCY_SUM, scale=1e-6),
    Read("ts_inference_requests_total", Into.LATENCY_COUNT),
)

# KServe's Python model server (its predict step's histogram; it has no outcome counters) and
# MLServer (docs: "Metrics"; outcome counters and a latency summary per `model` and `version`,
# on its metrics port, 8082 by default).
KSERVE = (
    Read("request_predict_seconds", Into.LATENCY),
    Read("model_infer_request_success", Into.SUCCESS, "model"),
    Read("model_infer_request_failure", Into.FAILURE, "model"),
    Read("model_infer_request_duration", Into.LATENCY_SUM, "model", part="sum"),
    Read("model_infer_request_duration", Into.LATENCY_COUNT, "model", part="count"),
)

#: preset name -> the families read from its metrics page (presets without one are absent).
ENGINES: dict[str, tuple[Read, ...]] = {
    "kserve": KSERVE,
    "triton": TRITON,
    "torchserve": TORCHSERVE,
    "tgi": TGI,
    "vllm": VLLM,
}


#: How each normalised family is written in the docs' engine table.
_TITLES = {
    Into.SUCCESS: "success",
    Into.FAILURE: "failure",
    Into.LATENCY: "latency (histogram)",
    Into.LATENCY_SUM: "latency sum",
    Into.LATENCY_COUNT: "latency count",
    Into.TTFT: "time to first token",
    Into.RUNNING: "running",
    Into.WAITING: "waiting",
    Into.PROMPT_TOKENS: "prompt tokens",
    Into.GENERATION_TOKENS: "generation tokens",
    Into.KV_CACHE: "KV cache",
}


def engine_table() -> str:
    """The docs' table of which engine family feeds what (python -m exporter.docs_tables)."""
    lines = ["| kind | normalised | engine family | model label | unit |", "|" + " --- |" * 5]
    for name, reads in ENGINES.items():
        for read in reads:
            family = f"`{read.family}`" + (f" (`_{read.part}`)" if read.part else "")
            if read.keep is not None:
                family += ", inference routes with status 4xx/5xx"
            model = f"`{read.model_label}`" if read.model_label else "the server's model"
            unit = {1e-6: "µs -> s", 1e-3: "ms -> s"}.get(read.scale, "")
            lines.append(f"| `{name}` | {_TITLES[read.into]} | {family} | {model} | {unit} |")
    return "\n".join(lines) + "\n"
