"""The Model servers dashboard: inference traffic from the engines' own metrics (rate, errors,
latency, time to first token, queue, tokens, KV cache), then health and the exporter's probes."""

from __future__ import annotations

from alerts.thresholds import MODEL_ERROR_RATIO, MODEL_KV_CACHE_RATIO
from grafana.panels import (
    RATE,
    TARGET,
    Board,
    Row,
    area_variable,
    instance_variable,
    job_variable,
    query,
    red_above,
    stat_panel,
    timeseries_panel,
)

MODEL = f'{TARGET}, server=~"$server"'


def quantile(q: float, family: str, by: str = "server, model") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({family}_bucket{{{MODEL}}}[{RATE}])))"


def requests_rate(by: str, status: str = "") -> str:
    matchers = f'{MODEL}, status="{status}"' if status else MODEL
    return f"sum by ({by}) (rate(model_server_requests_total{{{matchers}}}[{RATE}]))"


ERROR_RATIO = f"{requests_rate('server', 'failure')}\n/ ({requests_rate('server')} > 0)"

BOARD = Board(
    "afirgen-model-servers",
    "afirgen / Model servers",
    "Model servers: inference traffic as the engines themselves count it (vLLM, TGI, Triton, "
    "TorchServe, KServe/MLServer metrics pages, or the app's own calls in embedded mode), "
    "then health: live, ready, per-model readiness, and the exporter's own probes.",
    [
        job_variable(),
        instance_variable("model_server_up"),
        area_variable("server", "Server", "model_server_up"),
    ],
    [
        Row(
            "Inference",
            [
                stat_panel(
                    "Inference requests/s",
                    "Inference requests per second, all models of the selected servers.",
                    "reqps",
                    query(f"sum({requests_rate('server')}) or vector(0)"),
                ),
                stat_panel(
                    "Error ratio",
                    "Failed over all inference requests, selected servers (red where the "
                    "error-ratio alert fires).",
                    "percentunit",
                    query(
                        f"sum({requests_rate('server', 'failure')})\n"
                        f"/ (sum({requests_rate('server')}) > 0)"
                    ),
                    steps=red_above(MODEL_ERROR_RATIO),
                ),
                stat_panel(
                    "Waiting requests",
                    "Requests waiting in the engines' queues now.",
                    "short",
                    query(f"sum(model_server_requests_waiting{{{MODEL}}}) or vector(0)"),
                ),
                stat_panel(
                    "Engine metrics read",
                    "Servers whose own metrics page was read in the last scrape (1 each); a "
                    "failed read is explained on the exporter's landing page.",
                    "short",
                    query(f"sum(model_server_metrics_up{{{MODEL}}})"),
                ),
                timeseries_panel(
                    "Inference rate by model",
                    "Inference requests per second by server, model and outcome.",
                    "reqps",
                    query(
                        requests_rate("server, model, status"), "{{server}} {{model}} {{status}}"
                    ),
                ),
                timeseries_panel(
                    "Error ratio by server",
                    "Failed over all inference requests per server.",
                    "percentunit",
                    query(ERROR_RATIO, "{{server}}"),
                    min=0,
                    max=1,
                ),
                timeseries_panel(
                    "Latency p50 / p95 by model",
                    "End-to-end inference latency from the engine's histogram; engines with "
                    "duration counters only (Triton, TorchServe) show their mean.",
                    "s",
                    query(
                        quantile(0.5, "model_server_latency_seconds"), "{{server}} {{model}} p50"
                    ),
                    query(
                        quantile(0.95, "model_server_latency_seconds"), "{{server}} {{model}} p95"
                    ),
                    query(
                        f"sum by (server, model) "
                        f"(rate(model_server_latency_seconds_sum{{{MODEL}}}[{RATE}]))\n"
                        f"/ (sum by (server, model) "
                        f"(rate(model_server_latency_seconds_count{{{MODEL}}}[{RATE}])) > 0)",
                        "{{server}} {{model}} mean",
                    ),
                ),
                timeseries_panel(
                    "Time to first token p50 / p95",
                    "Time to the first generated token (vLLM, Triton with histogram latencies).",
                    "s",
                    query(
                        quantile(0.5, "model_server_time_to_first_token_seconds"),
                        "{{server}} {{model}} p50",
                    ),
                    query(
                        quantile(0.95, "model_server_time_to_first_token_seconds"),
                        "{{server}} {{model}} p95",
                    ),
                ),
                timeseries_panel(
                    "Running and waiting",
                    "Requests in the engine's running batch and in its queue.",
                    "short",
                    query(
                        f"sum by (server, model) (model_server_requests_running{{{MODEL}}})",
                        "{{server}} {{model}} running",
                    ),
                    query(
                        f"sum by (server, model) (model_server_requests_waiting{{{MODEL}}})",
                        "{{server}} {{model}} waiting",
                    ),
                    min=0,
                ),
                timeseries_panel(
                    "Tokens/s",
                    "Prompt (prefill) and generated tokens per second.",
                    "short",
                    query(
                        f"sum by (server, model, kind) "
                        f"(rate(model_server_tokens_total{{{MODEL}}}[{RATE}]))",
                        "{{server}} {{model}} {{kind}}",
                    ),
                    min=0,
                ),
                timeseries_panel(
                    "KV cache usage",
                    f"Share of the KV cache in use (vLLM); the alert fires past "
                    f"{MODEL_KV_CACHE_RATIO.value:.0%}.",
                    "percentunit",
                    query(
                        f"max by (server, model) (model_server_kv_cache_usage_ratio{{{MODEL}}})",
                        "{{server}} {{model}}",
                    ),
                    min=0,
                    max=1,
                ),
                timeseries_panel(
                    "p95 latency (5m)",
                    "p95 inference latency per server and model over 5 minutes (the recording "
                    "rule the latency alert uses).",
                    "s",
                    query(
                        f"job_server_model:model_server_latency_seconds:p95_rate5m{{{MODEL}}}",
                        "{{server}} {{model}}",
                    ),
                ),
            ],
        ),
        Row(
            "Health",
            [
                stat_panel(
                    "Ready",
                    "1 when the server answered its readiness probe in the last scrape.",
                    "none",
                    query(f"model_server_availability{{{MODEL}}}", "{{server}}"),
                    updown=True,
                    width=12,
                ),
                stat_panel(
                    "Models not ready",
                    "Configured models the servers do not report ready (0 is healthy).",
                    "short",
                    query(f"count(model_server_model_ready{{{MODEL}}} == 0) or vector(0)"),
                    width=12,
                    steps=red_above(1),
                ),
                timeseries_panel(
                    "Live and ready",
                    "Liveness (`model_server_up`) and readiness per server.",
                    "none",
                    query(f"model_server_up{{{MODEL}}}", "{{server}} live"),
                    query(f"model_server_availability{{{MODEL}}}", "{{server}} ready"),
                    min=0,
                    max=1,
                ),
                timeseries_panel(
                    "Model readiness",
                    "Per configured model: 1 ready, 0 not.",
                    "none",
                    query(f"model_server_model_ready{{{MODEL}}}", "{{server}} {{model}}"),
                    min=0,
                    max=1,
                ),
            ],
        ),
        Row(
            "Probes",
            [
                timeseries_panel(
                    "Probe latency",
                    "Quantiles of the exporter's own health-probe latency, from the histogram "
                    "accumulated across scrapes (not inference latency).",
                    "s",
                    query(
                        quantile(0.5, "model_server_probe_duration_seconds", by="server"),
                        "{{server}} p50",
                    ),
                    query(
                        quantile(0.95, "model_server_probe_duration_seconds", by="server"),
                        "{{server}} p95",
                    ),
                ),
                timeseries_panel(
                    "Probe outcomes",
                    "The exporter's probe requests per second by outcome: HTTP status class "
                    "or a failure reason.",
                    "ops",
                    query(
                        f"sum by (server, status) "
                        f"(rate(model_server_probe_requests_total{{{MODEL}}}[{RATE}]))",
                        "{{server}} {{status}}",
                    ),
                ),
                timeseries_panel(
                    "Probe p95 (5m)",
                    "p95 probe latency over 5 minutes (recording rule the probe alert uses).",
                    "s",
                    query(
                        f"job_server:model_server_probe_duration_seconds:p95_rate5m{{{MODEL}}}",
                        "{{server}}",
                    ),
                ),
                timeseries_panel(
                    "Version",
                    "Server kind and version reported by the server (1 per version).",
                    "none",
                    query(
                        f"model_server_info{{{MODEL}}}",
                        "{{server}} {{kind}} {{version}}",
                    ),
                ),
            ],
        ),
    ],
)
