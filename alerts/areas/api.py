"""The backend's HTTP API (embedded mode): 5xx ratio and latency per endpoint."""

from __future__ import annotations

from alerts.rules import Alert, Area, Record, selector
from alerts.thresholds import (
    API_ERROR_FOR,
    API_ERROR_RATIO,
    API_LATENCY_FOR,
    API_LATENCY_SECONDS,
)

SERVER_ERROR = 'status=~"5.."'

AREA = Area(
    "api",
    records=(
        Record(
            "job_endpoint:api_requests_errors:ratio_rate5m",
            "sum by (job, instance, endpoint) "
            f"(rate(api_requests_total{selector(SERVER_ERROR)}[5m]))\n"
            "/ (sum by (job, instance, endpoint) "
            f"(rate(api_requests_total{selector()}[5m])) > 0)",
        ),
        Record(
            "job_endpoint:api_request_duration_seconds:p95_rate5m",
            "histogram_quantile(0.95,\n"
            "  sum by (job, instance, endpoint, le) "
            f"(rate(api_request_duration_seconds_bucket{selector()}[5m])))",
        ),
    ),
    alerts=(
        Alert(
            "AfirgenApiErrorRatioHigh",
            f"job_endpoint:api_requests_errors:ratio_rate5m > {API_ERROR_RATIO}",
            API_ERROR_FOR,
            "critical",
            "An API endpoint answers many server errors.",
            "{{ $value | humanizePercentage }} of requests to {{ $labels.endpoint }} on "
            "{{ $labels.instance }} answer 5xx.",
        ),
        Alert(
            "AfirgenApiLatencyHigh",
            f"job_endpoint:api_request_duration_seconds:p95_rate5m > {API_LATENCY_SECONDS}",
            API_LATENCY_FOR,
            "warning",
            "An API endpoint is slow.",
            "p95 latency of {{ $labels.endpoint }} on {{ $labels.instance }} is "
            "{{ $value | humanizeDuration }}.",
        ),
    ),
)
