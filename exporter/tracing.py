"""Exemplar labels from the active OpenTelemetry span, when opentelemetry-api is installed.

The embedded middleware attaches these to the request counter and duration histogram, so a
slow bucket in Grafana links to the trace of a request that landed there. Without
opentelemetry-api (the optional `otel` extra), or without a recording span, there is no
exemplar: `trace_exemplar()` returns None and costs one attribute check.
"""

from __future__ import annotations

from collections.abc import Callable

try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - depends on the installed extras
    _trace = None  # type: ignore[assignment]


def _from_otel() -> dict[str, str] | None:
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def _none() -> dict[str, str] | None:
    return None


#: `{"trace_id": 32 hex digits, "span_id": 16 hex digits}` of the current span, or None.
trace_exemplar: Callable[[], dict[str, str] | None] = _from_otel if _trace is not None else _none
