"""A faster encoder for the Prometheus text format 0.0.4, byte-for-byte prometheus_client's.

Why our own: the benchmark (benchmarks/scrape.py) measured prometheus_client's
`generate_latest` at ~0.35 M samples/s on this machine, below the 0.5 M samples/s target;
most of its time goes to re-validating the same metric and label names for every sample
and formatting each line through several helpers. This encoder escapes each name once (same
escaping functions as the library) and keeps the result across scrapes: HELP/TYPE lines, and
each series' line up to its value (found by one lookup of its name, label names and values:
the same series come back every scrape), so a line costs that lookup and its value.
tests/test_text_format.py compares its output with the library's on varied families.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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


#: Entries of the caches below before they are emptied (names, label sets and label values are
#: bounded per config; this only keeps a pathological source from growing them without end).
CACHE_LIMIT = 20_000
#: escaping -> (name, type, help) -> what a family writes besides its samples
_HEADS: dict[str, dict[tuple[str, str, str], _Head]] = {}
#: (line head, family name, suffix): see `_line`
_Line = tuple[str, str | None, str]
#: escaping -> (sample name, *label names, *label values, in the sample's order) -> its _Line
_LINES: dict[str, dict[tuple[str, ...], _Line]] = {}
#: escaping -> (sample name, *label names in the sample's order) -> line template
_TEMPLATES: dict[str, dict[tuple[str, ...], str]] = {}


class _Head:
    """A family's HELP and TYPE lines and, for OpenMetrics-only samples, their own headers."""

    __slots__ = ("text", "om_heads", "classic_only")

    def __init__(self, metric: Metric, escaping: str) -> None:
        name = metric.name + _NAME_SUFFIX.get(metric.type, "")
        mtype = _TYPE_RENAMES.get(metric.type, metric.type)
        escaped = escape_metric_name(name, escaping)
        documentation = _escape_help(metric.documentation)
        self.text = f"# HELP {escaped} {documentation}\n# TYPE {escaped} {mtype}\n"
        self.om_heads = {}
        for suffix in _OM_SUFFIXES:
            om_name = escape_metric_name(metric.name + suffix, escaping)
            self.om_heads[suffix] = f"# HELP {om_name} {documentation}\n# TYPE {om_name} gauge\n"
        self.classic_only = mtype == "histogram"


def _template(name: str, keys: tuple[str, ...], escaping: str) -> str:
    """`name{a="%s",b="%s"} `: labels sorted, as the library writes them."""
    sname = _sample_name(name, escaping).replace("%", "%%")
    if not keys:
        return sname + "} " if sname[0] == "{" else sname + " "
    pairs = ",".join(
        escape_label_name(k, escaping).replace("%", "%%") + '="%s"' for k in sorted(keys)
    )
    return sname + "," + pairs + "} " if sname[0] == "{" else sname + "{" + pairs + "} "


def _line(name: str, labels: dict[str, str], escaping: str) -> _Line:
    """What a sample writes before its value, and (family name, suffix) when its name is one
    of the OpenMetrics-only series the text format writes as a family of its own."""
    keys = tuple(labels)
    templates = _TEMPLATES.setdefault(escaping, {})
    template = templates.get((name, *keys))
    if template is None:
        template = templates[(name, *keys)] = _template(name, keys, escaping)
    head = template % tuple(_escape_value(labels[k]) for k in sorted(keys))
    for suffix in _OM_SUFFIXES:
        if name.endswith(suffix):
            return head, name[: -len(suffix)], suffix
    return head, None, ""


def generate_text(families: Iterable[Metric], escaping: str = UNDERSCORES) -> bytes:
    """The text exposition of `families`, as prometheus_client's `generate_latest` writes it.

    `escaping` is prometheus_client's: `allow-utf-8` quotes names outside the legacy set
    (`{"my.name",label="v"} 1`), the default replaces their invalid characters with `_`.
    Samples that carry only native buckets (collectors/native_histogram.py) have no text
    form and are left out; their classic buckets are written.

    What depends only on names and label values (HELP/TYPE lines, each series' line up to its
    value) is kept across scrapes: the same families and series come back every scrape.
    """
    output: list[str] = []
    append = output.append
    heads = _HEADS.get(escaping)
    lines = _LINES.get(escaping)
    if heads is None or len(heads) > CACHE_LIMIT:
        heads = _HEADS[escaping] = {}
    if lines is None or len(lines) > CACHE_LIMIT:
        lines = _LINES[escaping] = {}
        _TEMPLATES.pop(escaping, None)
    go_float = _go_float

    for metric in families:
        key = (metric.name, metric.type, metric.documentation)
        head = heads.get(key)
        if head is None:
            head = heads[key] = _Head(metric, escaping)
        append(head.text)
        om_lines: dict[str, list[str]] | None = None
        samples = metric.samples
        if head.classic_only:
            samples = [s for s in samples if s.native_histogram is None]
        for sample in samples:
            name, labels, value, timestamp = sample[0], sample[1], sample[2], sample[3]
            found = lines.get((name, *labels, *labels.values()))
            if found is None:
                found = lines[(name, *labels, *labels.values())] = _line(name, labels, escaping)
            line_head, family, suffix = found
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
            if family is None or family != metric.name:
                append(line)
            else:
                if om_lines is None:
                    om_lines = {}
                om_lines.setdefault(suffix, []).append(line)
        if om_lines:
            for om_suffix, om in sorted(om_lines.items()):
                append(head.om_heads[om_suffix])
                output.extend(om)
    return "".join(output).encode("utf-8")
