"""A faster encoder for the Prometheus text format 0.0.4, byte-for-byte prometheus_client's.

Why our own: the benchmark (benchmarks/scrape.py) measured prometheus_client's
`generate_latest` at ~0.35 M samples/s on this machine, below the 0.5 M samples/s target;
most of its time goes to re-validating the same metric and label names for every sample
and formatting each line through several helpers. This encoder escapes each name once (same
escaping functions as the library) and keeps the result across scrapes, as HELP/TYPE lines
and one `%`-template per sample name and label names, so a line is one formatting step.
tests/test_text_format.py compares its output with the library's on varied families.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import (
    ALLOWUTF8,
    UNDERSCORES,
    escape_label_name,
    escape_metric_name,
)
from prometheus_client.validation import _is_valid_legacy_metric_name

_TYPE_RENAMES = {
    "info": "gauge",
    "stateset": "gauge",
    "gaugehistogram": "histogram",
    "unknown": "untyped",
}
_NAME_SUFFIX = {"counter": "_total", "info": "_info"}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_INF = math.inf


def _go_float(value: float) -> str:
    """prometheus_client's floatToGoString."""
    d = float(value)
    if d == _INF:
        return "+Inf"
    if d == -_INF:
        return "-Inf"
    if d != d:  # NaN
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def _escape_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _sample_name(name: str, escaping: str) -> str:
    """The name as a sample line starts: `{"quoted"` (closed by the labels) when UTF-8."""
    if escaping == ALLOWUTF8 and not _is_valid_legacy_metric_name(name):
        return "{" + escape_metric_name(name, escaping)
    return escape_metric_name(name, escaping)


#: Entries of each cache below before it is emptied (names and label sets are bounded per
#: config; this only keeps a pathological source from growing them without end).
CACHE_LIMIT = 20_000
#: (name, type, help, escaping) -> what a family writes besides its samples
_HEADS: dict[tuple[str, str, str, str], _Head] = {}
#: (sample name, label names in the sample's order, escaping) -> line template and label getter
_TEMPLATES: dict[tuple[str, tuple[str, ...], str], tuple[str, Callable[[Any], Any] | None]] = {}


class _Head:
    """A family's HELP and TYPE lines and, for OpenMetrics-only samples, their own headers."""

    __slots__ = ("text", "om_names", "om_heads", "classic_only")

    def __init__(self, metric: Metric, escaping: str) -> None:
        name = metric.name + _NAME_SUFFIX.get(metric.type, "")
        mtype = _TYPE_RENAMES.get(metric.type, metric.type)
        escaped = escape_metric_name(name, escaping)
        documentation = _escape_help(metric.documentation)
        self.text = f"# HELP {escaped} {documentation}\n# TYPE {escaped} {mtype}\n"
        self.om_names = {metric.name + suffix: suffix for suffix in _OM_SUFFIXES}
        self.om_heads = {}
        for suffix in _OM_SUFFIXES:
            om_name = escape_metric_name(metric.name + suffix, escaping)
            self.om_heads[suffix] = f"# HELP {om_name} {documentation}\n# TYPE {om_name} gauge\n"
        self.classic_only = mtype == "histogram"


def _template(name: str, keys: tuple[str, ...], escaping: str) -> tuple[str, Any]:
    """`name{a="%s",b="%s"} ` (labels sorted, as the library writes them) and a getter of the
    label values in that order (None without labels)."""
    sname = _sample_name(name, escaping).replace("%", "%%")
    if not keys:
        return (sname + "} " if sname[0] == "{" else sname + " "), None
    ordered = sorted(keys)
    pairs = ",".join(escape_label_name(k, escaping).replace("%", "%%") + '="%s"' for k in ordered)
    head = sname + "," + pairs + "} " if sname[0] == "{" else sname + "{" + pairs + "} "
    getter = operator.itemgetter(*ordered)
    if len(ordered) == 1:
        first = ordered[0]
        return head, lambda labels: (labels[first],)
    return head, getter


def generate_text(families: Iterable[Metric], escaping: str = UNDERSCORES) -> bytes:
    """The text exposition of `families`, as prometheus_client's `generate_latest` writes it.

    `escaping` is prometheus_client's: `allow-utf-8` quotes names outside the legacy set
    (`{"my.name",label="v"} 1`), the default replaces their invalid characters with `_`.
    Samples that carry only native buckets (collectors/native_histogram.py) have no text
    form and are left out; their classic buckets are written.

    What depends only on names (HELP/TYPE lines, each sample name with its sorted label names
    as a line template) is kept across scrapes: the same families come back every scrape.
    """
    output: list[str] = []
    append = output.append
    heads, templates = _HEADS, _TEMPLATES
    if len(heads) > CACHE_LIMIT:
        heads.clear()
    if len(templates) > CACHE_LIMIT:
        templates.clear()
    go_float = _go_float
    escape_value = _escape_value

    for metric in families:
        key = (metric.name, metric.type, metric.documentation, escaping)
        head = heads.get(key)
        if head is None:
            head = heads[key] = _Head(metric, escaping)
        append(head.text)
        om_names = head.om_names
        om_lines: dict[str, list[str]] | None = None
        samples = metric.samples
        if head.classic_only:
            samples = [s for s in samples if s.native_histogram is None]
        for sample in samples:
            name, labels, value, timestamp = sample[0], sample[1], sample[2], sample[3]
            tkey = (name, tuple(labels), escaping)
            found = templates.get(tkey)
            if found is None:
                found = templates[tkey] = _template(name, tkey[1], escaping)
            line_head, values = found
            if values is not None:
                vals = values(labels)
                joined = "".join(vals)
                if "\\" in joined or "\n" in joined or '"' in joined:
                    vals = tuple(escape_value(v) for v in vals)
                line_head = line_head % vals
            if type(value) is not float:
                value = float(value)
            if -_INF < value < 1e6:
                text = repr(value)
            else:
                text = go_float(value)
            if timestamp is None:
                line = f"{line_head}{text}\n"
            else:
                line = f"{line_head}{text} {int(float(timestamp) * 1000):d}\n"
            om_suffix = om_names.get(name)
            if om_suffix is None:
                append(line)
            else:
                if om_lines is None:
                    om_lines = {}
                om_lines.setdefault(om_suffix, []).append(line)
        if om_lines:
            for om_suffix, lines in sorted(om_lines.items()):
                append(head.om_heads[om_suffix])
                output.extend(lines)
    return "".join(output).encode("utf-8")
