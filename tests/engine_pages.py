"""The metrics pages of the engines' stand-ins, written from each engine's metrics documentation
(family names, types, labels, units; the exposition shape of the library each engine uses), from
the traffic a test made: `Traffic.serve(...)` records requests, `page(kind, traffic)` renders
what the engine would serve for them. Each page also carries families the exporter must ignore
(other handlers, other histograms), as a real page does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import generate_latest

#: vLLM's end-to-end latency and time-to-first-token buckets (seconds)
VLLM_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0)
VLLM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: TGI's duration buckets (seconds)
TGI_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
#: Triton's first-response histogram buckets (milliseconds)
TRITON_TTFT_MS = (100.0, 500.0, 2000.0, 5000.0)
#: KServe's predict histogram: prometheus_client's default buckets
KSERVE_BUCKETS = Histogram.DEFAULT_BUCKETS


@dataclass
class ModelTraffic:
    success: int = 0
    failure: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, every request
    ttfts: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    generation_tokens: int = 0
    running: int = 0
    waiting: int = 0
    kv_cache: float = 0.0  # 0-1


@dataclass
class Traffic:
    """What the stand-in's engine has done since it started; `mode` breaks its page."""

    models: dict[str, ModelTraffic] = field(default_factory=dict)
    vllm_generation: str = "v1"  # v0: gpu_cache_usage_perc, v1: kv_cache_usage_perc
    kserve_flavour: str = "kserve"  # or "mlserver": the other v2 server the preset covers
    #: "ok", "garbage" (200 with text that is not the format), "bad_bound" (a bucket bound
    #: that is not a number), "error" (HTTP 500), "empty", "huge" (the page after `huge_bytes`
    #: of comment lines)
    mode: str = "ok"
    huge_bytes: int = 0
    requests: int = 0  # how often the page was asked for

    def serve(
        self,
        model: str,
        success: int,
        failure: int = 0,
        latency: float = 0.4,
        ttft: float = 0.05,
        prompt: int = 12,
        generated: int = 30,
    ) -> ModelTraffic:
        """Record `success` + `failure` requests to `model`, each taking `latency` seconds."""
        traffic = self.models.setdefault(model, ModelTraffic())
        traffic.success += success
        traffic.failure += failure
        traffic.latencies += [latency] * (success + failure)
        traffic.ttfts += [ttft] * success
        traffic.prompt_tokens += prompt * success
        traffic.generation_tokens += generated * success
        return traffic


def page(kind: str, traffic: Traffic) -> str:
    traffic.requests += 1
    if traffic.mode == "garbage":
        # wanted families' names, broken label sets (a truncated or corrupted page)
        return 'vllm:num_requests_running{model_name="x" 1\ntgi_queue_size{le= 1\n' * 3
    if traffic.mode == "bad_bound":  # well-formed lines; `le` is no number
        return (
            'vllm:time_to_first_token_seconds_bucket{model_name="x",le="soon"} 1\n'
            'tgi_request_duration_bucket{le="soon"} 1\n'
        )
    if traffic.mode == "empty":
        return ""
    if traffic.mode == "huge":
        return "# padding\n" * (traffic.huge_bytes // 10 + 1) + PAGES[kind](traffic)
    return PAGES[kind](traffic)


def _prometheus_client_page(traffic: Traffic, build) -> str:
    registry = CollectorRegistry()
    build(registry, traffic)
    return generate_latest(registry).decode()


def _vllm(registry: CollectorRegistry, traffic: Traffic) -> None:
    labels = ["model_name", "engine"]
    running = Gauge(
        "vllm:num_requests_running",
        "Requests in model execution batches.",
        labels,
        registry=registry,
    )
    waiting = Gauge(
        "vllm:num_requests_waiting", "Requests waiting to be processed.", labels, registry=registry
    )
    cache_name = (
        "vllm:kv_cache_usage_perc"
        if traffic.vllm_generation == "v1"
        else "vllm:gpu_cache_usage_perc"
    )
    cache = Gauge(
        cache_name, "KV-cache usage. 1 means 100 percent usage.", labels, registry=registry
    )
    prompt = Counter("vllm:prompt_tokens", "Prefill tokens processed.", labels, registry=registry)
    generation = Counter(
        "vllm:generation_tokens", "Generation tokens processed.", labels, registry=registry
    )
    success = Counter(
        "vllm:request_success",
        "Successfully processed requests.",
        [*labels, "finished_reason"],
        registry=registry,
    )
    e2e = Histogram(
        "vllm:e2e_request_latency_seconds",
        "End to end request latency.",
        labels,
        buckets=VLLM_LATENCY_BUCKETS,
        registry=registry,
    )
    ttft = Histogram(
        "vllm:time_to_first_token_seconds",
        "Time to first token.",
        labels,
        buckets=VLLM_TTFT_BUCKETS,
        registry=registry,
    )
    iteration = Histogram(
        "vllm:iteration_tokens_total",
        "Tokens per engine step.",
        labels,
        buckets=(1, 8, 16, 32, 64, 128, 256),
        registry=registry,
    )
    http = Counter(
        "http_requests",
        "Total number of requests by method, status and handler.",
        ["handler", "method", "status"],
        registry=registry,
    )
    for model, t in traffic.models.items():
        ids = (model, "0")
        running.labels(*ids).set(t.running)
        waiting.labels(*ids).set(t.waiting)
        cache.labels(*ids).set(t.kv_cache)
        prompt.labels(*ids).inc(t.prompt_tokens)
        generation.labels(*ids).inc(t.generation_tokens)
        stopped = t.success // 2  # vLLM counts success by finish reason
        success.labels(*ids, "stop").inc(stopped)
        success.labels(*ids, "length").inc(t.success - stopped)
        for seconds in t.latencies[: t.success]:  # vLLM observes finished requests only
            e2e.labels(*ids).observe(seconds)
            iteration.labels(*ids).observe(16)
        for seconds in t.ttfts:
            ttft.labels(*ids).observe(seconds)
        http.labels("/v1/completions", "POST", "2xx").inc(t.success)
        http.labels("/v1/completions", "POST", "4xx").inc(t.failure - t.failure // 2)
        http.labels("/v1/chat/completions", "POST", "5xx").inc(t.failure // 2)
        http.labels("/health", "GET", "5xx").inc(3)  # not inference: never counted
        http.labels("/v1/models", "GET", "4xx").inc(2)


def _mlserver(registry: CollectorRegistry, traffic: Traffic) -> None:
    """MLServer: outcome counters and a latency summary per model and version, and its REST
    server's own counters by path (not per model: not read)."""
    labels = ["model", "version"]
    success = Counter(
        "model_infer_request_success",
        "Model infer request success count",
        labels,
        registry=registry,
    )
    failure = Counter(
        "model_infer_request_failure",
        "Model infer request failure count",
        labels,
        registry=registry,
    )
    duration = Summary(
        "model_infer_request_duration", "Model infer request duration", labels, registry=registry
    )
    rest = Counter(
        "rest_server_requests",
        "REST requests",
        ["method", "path", "status_code", "app_name"],
        registry=registry,
    )
    for model, t in traffic.models.items():
        success.labels(model, "None").inc(t.success)
        failure.labels(model, "None").inc(t.failure)
        for seconds in t.latencies:  # timed around every inference, failed ones too
            duration.labels(model, "None").observe(seconds)
        rest.labels("POST", f"/v2/models/{model}/infer", "200", "mlserver").inc(t.success)


def _kserve(registry: CollectorRegistry, traffic: Traffic) -> None:
    if traffic.kserve_flavour == "mlserver":
        return _mlserver(registry, traffic)
    predict = Histogram(
        "request_predict_seconds", "predict request latency", ["model_name"], registry=registry
    )
    pre = Histogram(
        "request_preprocess_seconds",
        "pre-process request latency",
        ["model_name"],
        registry=registry,
    )
    for model, t in traffic.models.items():
        for seconds in t.latencies:
            predict.labels(model).observe(seconds)
            pre.labels(model).observe(0.001)


def _histogram_lines(name: str, labels: str, bounds, values, scale: float = 1.0) -> list[str]:
    """Cumulative `_bucket`, `_sum`, `_count` lines; `values` in seconds, bounds in the page's
    unit (`scale` converts seconds to it)."""
    lines = []
    sep = "," if labels else ""
    for bound in bounds:
        count = sum(1 for v in values if v * scale <= bound)
        lines.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {count}')
    lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {len(values)}')
    lines.append(f"{name}_sum{{{labels}}} {sum(values) * scale}")
    lines.append(f"{name}_count{{{labels}}} {len(values)}")
    return lines


def _tgi(traffic: Traffic) -> str:
    """TGI's Rust exporter: counters without `_total`, no model label (one model per server)."""
    (t,) = traffic.models.values() or (ModelTraffic(),)
    lines = [
        "# TYPE tgi_request_count counter",
        f"tgi_request_count {t.success + t.failure}",
        "# TYPE tgi_request_success counter",
        f"tgi_request_success {t.success}",
        "# TYPE tgi_request_failure counter",
        f'tgi_request_failure{{err="validation"}} {t.failure - t.failure // 2}',
        f'tgi_request_failure{{err="overloaded"}} {t.failure // 2}',
        "# TYPE tgi_queue_size gauge",
        f"tgi_queue_size {t.waiting}",
        "# TYPE tgi_batch_current_size gauge",
        f"tgi_batch_current_size {t.running}",
        "# TYPE tgi_request_duration histogram",
        *_histogram_lines("tgi_request_duration", "", TGI_BUCKETS, t.latencies[: t.success]),
        "# TYPE tgi_request_input_length histogram",
        *_histogram_lines("tgi_request_input_length", "", (10, 100, 1000), [12] * t.success),
        "# TYPE tgi_request_generated_tokens histogram",
        *_histogram_lines("tgi_request_generated_tokens", "", (10, 100), [30] * t.success),
        "# TYPE tgi_batch_forward_duration histogram",
        *_histogram_lines("tgi_batch_forward_duration", 'method="prefill"', TGI_BUCKETS, [0.01]),
    ]
    # the sums above are token counts per request: rewrite them from the recorded totals
    lines = [
        f"tgi_request_input_length_sum{{}} {t.prompt_tokens}"
        if line.startswith("tgi_request_input_length_sum")
        else f"tgi_request_generated_tokens_sum{{}} {t.generation_tokens}"
        if line.startswith("tgi_request_generated_tokens_sum")
        else line
        for line in lines
    ]
    return "\n".join(lines) + "\n"


def _triton(traffic: Traffic) -> str:
    """Triton (prometheus-cpp): per model and version, durations in microseconds."""
    models = traffic.models.items()

    def family(name: str, kind: str, value) -> list[str]:
        head = [
            f"# HELP {name} {name.removeprefix('nv_').replace('_', ' ')}",
            f"# TYPE {name} {kind}",
        ]
        return head + [f'{name}{{model="{m}",version="1"}} {value(t)}' for m, t in models]

    lines = [
        *family("nv_inference_request_success", "counter", lambda t: t.success),
        *family("nv_inference_request_failure", "counter", lambda t: t.failure),
        *family("nv_inference_count", "counter", lambda t: t.success * 4),
        *family(
            "nv_inference_request_duration_us", "counter",
            lambda t: sum(t.latencies[: t.success]) * 1e6,
        ),
        *family("nv_inference_queue_duration_us", "counter", lambda t: 1234),
        *family("nv_inference_pending_request_count", "gauge", lambda t: t.waiting),
        "# TYPE nv_inference_first_response_histogram_ms histogram",
    ]  # fmt: skip
    for model, t in models:
        labels = f'model="{model}",version="1"'
        lines += _histogram_lines(
            "nv_inference_first_response_histogram_ms", labels, TRITON_TTFT_MS, t.ttfts, 1000.0
        )
    lines += ["# TYPE nv_gpu_utilization gauge", 'nv_gpu_utilization{gpu_uuid="GPU-0"} 0.5']
    return "\n".join(lines) + "\n"


def _torchserve(traffic: Traffic) -> str:
    """TorchServe in prometheus mode (the Java client: a trailing comma in every label set)."""
    host = 'hostname="ts-0",'
    failures = sum(t.failure for t in traffic.models.values())
    lines = [
        "# HELP Requests4XX Torchserve prometheus counter metric with unit: Count",
        "# TYPE Requests4XX counter",
        f'Requests4XX{{Level="Host",Hostname="ts-0",}} {failures - failures // 2}',
        "# TYPE Requests5XX counter",
        f'Requests5XX{{Level="Host",Hostname="ts-0",}} {failures // 2}',
        "# TYPE Requests2XX counter",
        f'Requests2XX{{Level="Host",Hostname="ts-0",}} {sum(t.success for t in traffic.models.values())}',  # noqa: E501
        "# TYPE ts_inference_requests_total counter",
    ]
    for model, t in traffic.models.items():
        lines.append(
            f'ts_inference_requests_total{{model_name="{model}",model_version="default",{host}}} {t.success}'
        )
    lines.append("# TYPE ts_inference_latency_microseconds counter")
    for model, t in traffic.models.items():
        micros = sum(t.latencies[: t.success]) * 1e6
        lines.append(
            f'ts_inference_latency_microseconds{{model_name="{model}",model_version="default",{host}}} {micros}'
        )
    lines.append("# TYPE ts_queue_latency_microseconds counter")
    for model in traffic.models:
        lines.append(
            f'ts_queue_latency_microseconds{{model_name="{model}",model_version="default",{host}}} 99.0'
        )
    lines += ["# TYPE MemoryUsed gauge", 'MemoryUsed{Level="Host",Hostname="ts-0",} 1024.0']
    return "\n".join(lines) + "\n"


PAGES = {
    "vllm": lambda t: _prometheus_client_page(t, _vllm),
    "kserve": lambda t: _prometheus_client_page(t, _kserve),
    "tgi": _tgi,
    "triton": _triton,
    "torchserve": _torchserve,
}
