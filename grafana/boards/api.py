"""The API dashboard (embedded mode): requests, 5xx ratio, latency, in flight."""

from __future__ import annotations

from grafana.panels import (
    RATE,
    TARGET,
    Board,
    Row,
    area_variable,
    instance_variable,
    job_variable,
    query,
    timeseries_panel,
)

API = f'{TARGET}, endpoint=~"$endpoint"'

BOARD = Board(
    "afirgen-api",
    "afirgen / API",
    "The backend's HTTP API as its ASGI middleware counts it (embedded mode only): requests by "
    "route template, errors, latency and requests in flight.",
    [
        job_variable(),
        instance_variable("api_requests_total"),
        area_variable("endpoint", "Endpoint", "api_requests_total"),
    ],
    [
        Row(
            "Requests",
            [
                timeseries_panel(
                    "Requests per second",
                    "Requests by route template and status.",
                    "reqps",
                    query(
                        f"sum by (endpoint, status) (rate(api_requests_total{{{API}}}[{RATE}]))",
                        "{{endpoint}} {{status}}",
                    ),
                ),
                timeseries_panel(
                    "Server errors",
                    "Share of requests answered 5xx, 5 minute window (recording rule).",
                    "percentunit",
                    query(
                        f"job_endpoint:api_requests_errors:ratio_rate5m{{{API}}}",
                        "{{endpoint}}",
                    ),
                    max=1,
                ),
                timeseries_panel(
                    "Latency",
                    "Median and 95th percentile of request duration by route template.",
                    "s",
                    query(
                        f"histogram_quantile(0.5, sum by (endpoint, le) "
                        f"(rate(api_request_duration_seconds_bucket{{{API}}}[{RATE}])))",
                        "{{endpoint}} p50",
                    ),
                    query(
                        f"histogram_quantile(0.95, sum by (endpoint, le) "
                        f"(rate(api_request_duration_seconds_bucket{{{API}}}[{RATE}])))",
                        "{{endpoint}} p95",
                    ),
                ),
                timeseries_panel(
                    "In progress",
                    "Requests being served right now.",
                    "short",
                    query(
                        f"sum by (endpoint, method) (api_requests_in_progress{{{API}}})",
                        "{{method}} {{endpoint}}",
                    ),
                ),
            ],
        ),
    ],
)
