"""The Model servers dashboard: live, ready, per-model readiness, probe latency."""

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
    red_above,
    stat_panel,
    timeseries_panel,
)

MODEL = f'{TARGET}, server=~"$server"'

BOARD = Board(
    "afirgen-model-servers",
    "afirgen / Model servers",
    "Model servers probed at scrape time through their health APIs: live, ready, per-model "
    "readiness, probe latency and outcomes.",
    [
        job_variable(),
        instance_variable("model_server_up"),
        area_variable("server", "Server", "model_server_up"),
    ],
    [
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
                    "Quantiles of probe latency from the histogram accumulated across scrapes.",
                    "s",
                    query(
                        f"histogram_quantile(0.5, sum by (server, le) "
                        f"(rate(model_server_latency_seconds_bucket{{{MODEL}}}[{RATE}])))",
                        "{{server}} p50",
                    ),
                    query(
                        f"histogram_quantile(0.95, sum by (server, le) "
                        f"(rate(model_server_latency_seconds_bucket{{{MODEL}}}[{RATE}])))",
                        "{{server}} p95",
                    ),
                ),
                timeseries_panel(
                    "Probe outcomes",
                    "Probes per second by outcome: HTTP status class or a failure reason.",
                    "ops",
                    query(
                        f"sum by (server, status) "
                        f"(rate(model_server_requests_total{{{MODEL}}}[{RATE}]))",
                        "{{server}} {{status}}",
                    ),
                ),
                timeseries_panel(
                    "p95 latency (5m)",
                    "p95 probe latency over 5 minutes (recording rule the alert uses).",
                    "s",
                    query(
                        f"job_server:model_server_latency_seconds:p95_rate5m{{{MODEL}}}",
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
