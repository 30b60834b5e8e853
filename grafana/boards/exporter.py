"""The Exporter dashboard: scrapes, collectors, label budgets, the exporter's own process."""

from __future__ import annotations

from grafana.panels import (
    RATE,
    TARGET,
    Board,
    Row,
    instance_variable,
    job_variable,
    query,
    red_above,
    stat_panel,
    timeseries_panel,
)

BOARD = Board(
    "afirgen-exporter",
    "afirgen / Exporter",
    "The exporter itself: is it scraped, which collectors succeed, how long they take, what "
    "their label budgets cut, and the exporter process's own CPU and memory.",
    [job_variable(), instance_variable()],
    [
        Row(
            "Scrapes",
            [
                stat_panel(
                    "Exporter up",
                    "Prometheus's own `up` for the exporter: 1 when the last scrape worked.",
                    "none",
                    query(f"up{{{TARGET}}}", "{{instance}}"),
                    updown=True,
                ),
                stat_panel(
                    "Failing collectors",
                    "Collectors that failed their last scrape (0 is healthy).",
                    "short",
                    query(
                        f"count(afirgen_exporter_collector_success{{{TARGET}}} == 0) or vector(0)"
                    ),
                    steps=red_above(1),
                ),
                stat_panel(
                    "Config reload",
                    "1 if the last config reload succeeded (or none was tried).",
                    "none",
                    query(
                        f"min(afirgen_exporter_config_last_reload_successful{{{TARGET}}})",
                        "reload",
                    ),
                    updown=True,
                ),
                stat_panel(
                    "Series dropped",
                    "Series folded into 'other' by the label budgets in the last scrape.",
                    "short",
                    query(f"sum(afirgen_exporter_series_dropped{{{TARGET}}})"),
                    steps=((None, "green"), (1, "orange")),
                ),
                timeseries_panel(
                    "Collector success",
                    "1 when a collector read its source in the last scrape, 0 when it failed "
                    "or ran out of time (the landing page says why).",
                    "none",
                    query(
                        f"afirgen_exporter_collector_success{{{TARGET}}}",
                        "{{collector}} {{target}}",
                    ),
                    min=0,
                    max=1,
                ),
                timeseries_panel(
                    "Collector duration",
                    "Time each collector took in the scrape; close to the scrape timeout means "
                    "the source is slow.",
                    "s",
                    query(
                        f"afirgen_exporter_collector_duration_seconds{{{TARGET}}}",
                        "{{collector}} {{target}}",
                    ),
                ),
                timeseries_panel(
                    "Scrape duration",
                    "How long Prometheus waited for the whole scrape, and the samples it got.",
                    "s",
                    query(f"scrape_duration_seconds{{{TARGET}}}", "{{instance}}"),
                ),
                timeseries_panel(
                    "Samples per scrape",
                    "Samples Prometheus ingested per scrape: the exporter's series count.",
                    "short",
                    query(f"scrape_samples_scraped{{{TARGET}}}", "{{instance}}"),
                ),
                timeseries_panel(
                    "Series dropped by label budgets",
                    "Series folded into 'other' per collector and target in each scrape.",
                    "short",
                    query(
                        f"afirgen_exporter_series_dropped{{{TARGET}}}",
                        "{{collector}} {{target}}",
                    ),
                ),
            ],
        ),
        Row(
            "Exporter process",
            [
                timeseries_panel(
                    "CPU",
                    "CPU time the exporter process uses per second (1 = one core).",
                    "percentunit",
                    query(f"rate(process_cpu_seconds_total{{{TARGET}}}[{RATE}])", "{{instance}}"),
                ),
                timeseries_panel(
                    "Memory",
                    "Resident memory of the exporter process.",
                    "bytes",
                    query(f"process_resident_memory_bytes{{{TARGET}}}", "{{instance}}"),
                ),
                timeseries_panel(
                    "Open file descriptors",
                    "Sockets and files the exporter holds; a steady climb is a leak.",
                    "short",
                    query(f"process_open_fds{{{TARGET}}}", "{{instance}}"),
                ),
            ],
        ),
    ],
)
