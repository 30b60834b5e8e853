"""Model servers: liveness and readiness (the exporter's probes), inference traffic (the
engines' own metrics): error ratio, latency, waiting queue, KV cache."""

from __future__ import annotations

from alerts.rules import Alert, Area, Record, selector
from alerts.thresholds import (
    MODEL_ERROR_FOR,
    MODEL_ERROR_RATIO,
    MODEL_INFERENCE_FOR,
    MODEL_INFERENCE_SECONDS,
    MODEL_KV_CACHE_FOR,
    MODEL_KV_CACHE_RATIO,
    MODEL_LATENCY_QUANTILE,
    MODEL_NOT_READY_FOR,
    MODEL_PROBE_FOR,
    MODEL_PROBE_SECONDS,
    MODEL_SERVER_DOWN_FOR,
    MODEL_WAITING_FOR,
    MODEL_WAITING_MIN,
)

BY_SERVER = "job, instance, server"
FAILED = 'status="failure"'

AREA = Area(
    "model_servers",
    records=(
        Record(
            "job_server:model_server_probe_duration_seconds:p95_rate5m",
            f"histogram_quantile({MODEL_LATENCY_QUANTILE},\n"
            f"  sum by ({BY_SERVER}, le) "
            f"(rate(model_server_probe_duration_seconds_bucket{selector()}[5m])))",
        ),
        Record(
            "job_server:model_server_latency_seconds:p95_rate5m",
            f"histogram_quantile({MODEL_LATENCY_QUANTILE},\n"
            f"  sum by ({BY_SERVER}, le) "
            f"(rate(model_server_latency_seconds_bucket{selector()}[5m])))",
        ),
        Record(
            "job_server_model:model_server_latency_seconds:p95_rate5m",
            f"histogram_quantile({MODEL_LATENCY_QUANTILE},\n"
            f"  sum by ({BY_SERVER}, model, le) "
            f"(rate(model_server_latency_seconds_bucket{selector()}[5m])))",
        ),
        Record(
            "job_server:model_server_requests_failed:ratio_rate5m",
            f"sum by ({BY_SERVER}) "
            f"(rate(model_server_requests_total{selector(FAILED)}[5m]))\n"
            f"/\n(sum by ({BY_SERVER}) (rate(model_server_requests_total{selector()}[5m])) > 0)",
        ),
    ),
    alerts=(
        Alert(
            "AfirgenModelServerDown",
            f"model_server_up{selector()} == 0",
            MODEL_SERVER_DOWN_FOR,
            "critical",
            "A model server is down.",
            "Model server {{ $labels.server }} (exporter {{ $labels.instance }}) has failed "
            f"its liveness probe for {MODEL_SERVER_DOWN_FOR}.",
        ),
        Alert(
            "AfirgenModelServerNotReady",
            f"model_server_availability{selector()} == 0\n"
            f"and on (job, instance, server)\nmodel_server_up{selector()} == 1",
            MODEL_NOT_READY_FOR,
            "warning",
            "A model server is live but not ready.",
            "Model server {{ $labels.server }} answers but has not been ready for "
            f"{MODEL_NOT_READY_FOR}.",
        ),
        Alert(
            "AfirgenModelNotReady",
            f"model_server_model_ready{selector()} == 0",
            MODEL_NOT_READY_FOR,
            "warning",
            "A model is not ready.",
            "Model {{ $labels.model }} on server {{ $labels.server }} has not been ready for "
            f"{MODEL_NOT_READY_FOR}.",
        ),
        Alert(
            "AfirgenModelServerProbeSlow",
            f"job_server:model_server_probe_duration_seconds:p95_rate5m > {MODEL_PROBE_SECONDS}",
            MODEL_PROBE_FOR,
            "warning",
            "A model server answers its health probes slowly.",
            "p95 probe latency of model server {{ $labels.server }} is "
            "{{ $value | humanizeDuration }}.",
        ),
        Alert(
            "AfirgenModelServerErrorRatioHigh",
            f"job_server:model_server_requests_failed:ratio_rate5m > {MODEL_ERROR_RATIO}",
            MODEL_ERROR_FOR,
            "critical",
            "A model server fails many inference requests.",
            "{{ $value | humanizePercentage }} of the inference requests to model server "
            "{{ $labels.server }} failed over 5 minutes (the engine's own counts).",
        ),
        Alert(
            "AfirgenModelServerLatencyHigh",
            f"job_server_model:model_server_latency_seconds:p95_rate5m > {MODEL_INFERENCE_SECONDS}",
            MODEL_INFERENCE_FOR,
            "warning",
            "A model answers inference requests slowly.",
            "p95 inference latency of model {{ $labels.model }} on server {{ $labels.server }} "
            "is {{ $value | humanizeDuration }} (the engine's own histogram).",
        ),
        Alert(
            "AfirgenModelServerQueueGrowing",
            f"sum by ({BY_SERVER}) (model_server_requests_waiting{selector()})"
            f" > {MODEL_WAITING_MIN}\n"
            f"and on ({BY_SERVER})\n"
            f"sum by ({BY_SERVER}) (delta(model_server_requests_waiting{selector()}[15m])) > 0",
            MODEL_WAITING_FOR,
            "warning",
            "A model server's waiting queue keeps growing.",
            "{{ $value }} requests wait in the queue of model server {{ $labels.server }}, "
            f"more than {MODEL_WAITING_MIN} and growing over 15 minutes.",
        ),
        Alert(
            "AfirgenModelServerKvCacheNearFull",
            f"max by ({BY_SERVER}) (model_server_kv_cache_usage_ratio{selector()})"
            f" > {MODEL_KV_CACHE_RATIO}",
            MODEL_KV_CACHE_FOR,
            "warning",
            "A model server's KV cache is nearly full.",
            "The KV cache of model server {{ $labels.server }} is "
            "{{ $value | humanizePercentage }} full.",
        ),
    ),
)
