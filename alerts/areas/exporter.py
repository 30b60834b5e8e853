"""The exporter itself: scrapes, collectors, config reloads, label budgets."""

from __future__ import annotations

from alerts.rules import Alert, Area, selector
from alerts.thresholds import (
    COLLECTOR_FAILING_FOR,
    EXPORTER_DOWN_FOR,
    RELOAD_FAILED_FOR,
    SERIES_DROPPED_FOR,
)

AREA = Area(
    "exporter",
    alerts=(
        Alert(
            "AfirgenExporterDown",
            f"up{selector()} == 0",
            EXPORTER_DOWN_FOR,
            "critical",
            "Prometheus cannot scrape the afirgen exporter.",
            "Scrapes of {{ $labels.instance }} (job {{ $labels.job }}) have failed for "
            f"{EXPORTER_DOWN_FOR}: no metric of the backend is being collected.",
        ),
        Alert(
            "AfirgenCollectorFailing",
            f"afirgen_exporter_collector_success{selector()} == 0",
            COLLECTOR_FAILING_FOR,
            "warning",
            "An exporter collector keeps failing.",
            "The {{ $labels.collector }} collector for target {{ $labels.target }} on "
            "{{ $labels.instance }} has failed every scrape for "
            f"{COLLECTOR_FAILING_FOR}; the exporter log says why.",
        ),
        Alert(
            "AfirgenExporterConfigReloadFailed",
            f"afirgen_exporter_config_last_reload_successful{selector()} == 0",
            RELOAD_FAILED_FOR,
            "warning",
            "The exporter refused its new config.",
            "The last config reload of {{ $labels.instance }} failed; it keeps serving the "
            "previous config.",
        ),
        Alert(
            "AfirgenExporterSeriesDropped",
            f"afirgen_exporter_series_dropped{selector()} > 0",
            SERIES_DROPPED_FOR,
            "info",
            "A label budget folds series into 'other'.",
            "The {{ $labels.collector }} collector for {{ $labels.target }} on "
            "{{ $labels.instance }} drops {{ $value }} series per scrape to its label budget.",
        ),
    ),
)
