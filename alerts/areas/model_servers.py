"""Model servers: liveness, readiness per server and model, probe latency."""

from __future__ import annotations

from alerts.rules import Alert, Area, Record, selector
from alerts.thresholds import (
    MODEL_LATENCY_FOR,
    MODEL_LATENCY_QUANTILE,
    MODEL_LATENCY_SECONDS,
    MODEL_NOT_READY_FOR,
    MODEL_SERVER_DOWN_FOR,
)

AREA = Area(
    "model_servers",
    records=(
        Record(
            "job_server:model_server_latency_seconds:p95_rate5m",
            f"histogram_quantile({MODEL_LATENCY_QUANTILE},\n"
            "  sum by (job, instance, server, le) "
            f"(rate(model_server_latency_seconds_bucket{selector()}[5m])))",
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
            "AfirgenModelServerLatencyHigh",
            f"job_server:model_server_latency_seconds:p95_rate5m > {MODEL_LATENCY_SECONDS}",
            MODEL_LATENCY_FOR,
            "warning",
            "A model server answers slowly.",
            "p95 probe latency of model server {{ $labels.server }} is "
            "{{ $value | humanizeDuration }}.",
        ),
    ),
)
