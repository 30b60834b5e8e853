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
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import (
    ALLOWUTF8,
    UNDERSCORES,
    escape_label_name,
    escape_metric_name,
)
from prometheus_client.validation import _is_valid_legacy_metric_name

from exporter.chunks import Chunk, joined_lines

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


#: Entries of each cache below at most (names, label sets and label values are bounded per
#: config; this only keeps a pathological source from growing them without end).
CACHE_LIMIT = 20_000

Head = TypeVar("Head")
Line = TypeVar("Line")
Template = TypeVar("Template")


class SeriesCache(Generic[Head, Line, Template]):
    """One encoder's caches across scrapes, per name escaping: each family's head (keyed by
    name, type, help...), each series' line up to its value (by name, label names and
    values), each name's line template (by name and label names), and how many samples the
    last scrape had. Each keeps at most CACHE_LIMIT entries."""

    def __init__(self) -> None:
        self.heads: dict[str, dict[tuple[str, ...], Head]] = {}
        self.lines: dict[str, dict[tuple[str, ...], Line]] = {}
        self.templates: dict[str, dict[tuple[str, ...], Template]] = {}
        self.series: dict[str, int] = {}

    def begin(
        self, escaping: str, scrape_samples: int | None = None
    ) -> tuple[
        dict[tuple[str, ...], Head],
        dict[tuple[str, ...], Line],
        dict[tuple[str, ...], Template],
        bool,
    ]:
        """A scrape's heads, lines and templates, and whether it keeps lines: a scrape with
        more series than the cache keeps would only churn it, so it is made from templates.
        The scrape's size is `scrape_samples` when the caller knows it (a scrape encoded in
        parts), else the last whole scrape's."""
        heads = self.heads.get(escaping)
        if heads is None or len(heads) > CACHE_LIMIT:
            heads = self.heads[escaping] = {}
        lines = self.lines.setdefault(escaping, {})
        templates = self.templates.setdefault(escaping, {})
        if scrape_samples is None:
            scrape_samples = self.series.get(escaping, 0)
        return heads, lines, templates, scrape_samples <= CACHE_LIMIT

    def end(self, escaping: str, misses: int, samples: int, *, whole: bool = True) -> None:
        """After encoding `samples` of which `misses` were not in the line cache: a full
        cache that missed most of them holds series that came before (or more than it can
        keep): emptied, it takes the next scrape's. Never full, it is never emptied. Only a
        `whole` scrape's size is remembered."""
        if whole:
            self.series[escaping] = samples
        lines = self.lines[escaping]
        if len(lines) >= CACHE_LIMIT and misses * 2 > samples:
            lines.clear()


#: (line head, family name, suffix): what a sample writes before its value and, when its name
#: is one of the OpenMetrics-only series the text format writes as a family of their own
#: (`_created`...), that family's name and the suffix
_Line = tuple[str, str | None, str]
#: (line template, getter of its label values or None, family name, suffix)
_Template = tuple[str, Callable[[Any], tuple[str, ...]] | None, str | None, str]
#: the text encoder's: heads are _Head (what a family writes besides its samples)
CACHE: SeriesCache[_Head, _Line, _Template] = SeriesCache()


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


def _template(name: str, keys: tuple[str, ...], escaping: str) -> _Template:
    """`name{a="%s",b="%s"} ` (labels sorted, as the library writes them), a getter of the
    label values in that order, and the OpenMetrics-only family the name belongs to."""
    family: str | None = None
    suffix = ""
    for om_suffix in _OM_SUFFIXES:
        if name.endswith(om_suffix):
            family, suffix = name[: -len(om_suffix)], om_suffix
    sname = _sample_name(name, escaping).replace("%", "%%")
    if not keys:
        return (sname + "} " if sname[0] == "{" else sname + " "), None, family, suffix
    ordered = sorted(keys)
    pairs = ",".join(escape_label_name(k, escaping).replace("%", "%%") + '="%s"' for k in ordered)
    head = sname + "," + pairs + "} " if sname[0] == "{" else sname + "{" + pairs + "} "
    return head, values_getter(ordered), family, suffix


def values_getter(ordered: list[str]) -> Callable[[Any], tuple[str, ...]]:
    """What reads a sample's label values in `ordered` order (always a tuple, even of one)."""
    if len(ordered) == 1:
        first = ordered[0]
        return lambda labels: (labels[first],)
    return operator.itemgetter(*ordered)


def filled(template: str, values: Callable[[Any], tuple[str, ...]], labels: Any) -> str:
    """A line template with a sample's label values put in, escaped where they need it."""
    vals = values(labels)
    joined = "".join(vals)
    if "\\" in joined or "\n" in joined or '"' in joined:
        vals = tuple(_escape_value(v) for v in vals)
    return template % vals


def _line(
    name: str, labels: dict[str, str], escaping: str, templates: dict[tuple[str, ...], _Template]
) -> _Line:
    """A series' line up to its value, from its name's template (kept in `templates`)."""
    found = templates.get((name, *labels))
    if found is None:
        if len(templates) >= CACHE_LIMIT:
            templates.clear()
        found = templates[(name, *labels)] = _template(name, tuple(labels), escaping)
    template, values, family, suffix = found
    if values is None:
        return template, family, suffix
    return filled(template, values, labels), family, suffix


def generate_text(families: Iterable[Metric], escaping: str = UNDERSCORES) -> bytes:
    """The text exposition of `families`, as prometheus_client's `generate_latest` writes it.

    `escaping` is prometheus_client's: `allow-utf-8` quotes names outside the legacy set
    (`{"my.name",label="v"} 1`), the default replaces their invalid characters with `_`.
    Samples that carry only native buckets (collectors/native_histogram.py) have no text
    form and are left out; their classic buckets are written.

    What depends only on names and label values (HELP/TYPE lines, each series' line up to its
    value) is kept across scrapes: the same families and series come back every scrape.
    """
    return "".join(text_chunk(families, escaping).lines).encode("utf-8")


def text_chunk(
    families: Iterable[Metric], escaping: str = UNDERSCORES, *, scrape_samples: int | None = None
) -> Chunk:
    """`families` (of distinct names) encoded, for `joined_text`. A scrape encoded in several
    chunks (a unit's families as soon as it is collected) passes the whole scrape's size as
    `scrape_samples`: whether series lines are kept depends on the scrape, not on one chunk."""
    chunk = Chunk()
    output = chunk.lines
    index = chunk.index
    append = output.append
    heads, lines, templates, keep_lines = CACHE.begin(escaping, scrape_samples)
    go_float = _go_float
    samples_seen = misses = 0

    for metric in families:
        key = (metric.name, metric.type, metric.documentation)
        head = heads.get(key)
        if head is None:
            head = heads[key] = _Head(metric, escaping)
        start = len(output)
        append(head.text)
        om_lines: dict[str, list[str]] | None = None
        samples = metric.samples
        if head.classic_only:
            samples = [s for s in samples if s.native_histogram is None]
        samples_seen += len(samples)
        for sample in samples:
            name, labels, value, timestamp = sample[0], sample[1], sample[2], sample[3]
            if keep_lines:
                found = lines.get((name, *labels, *labels.values()))
                if found is None:
                    found = _line(name, labels, escaping, templates)
                    misses += 1
                    if len(lines) < CACHE_LIMIT:
                        lines[(name, *labels, *labels.values())] = found
                line_head, family, suffix = found
            else:  # _line, inline: this runs for every sample of a large scrape
                template = templates.get((name, *labels))
                if template is None:
                    line_head, family, suffix = _line(name, labels, escaping, templates)
                else:
                    line_head, values, family, suffix = template
                    if values is not None:
                        vals = values(labels)
                        joined = "".join(vals)
                        if "\\" in joined or "\n" in joined or '"' in joined:
                            vals = tuple(_escape_value(v) for v in vals)
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
        index.append((metric.name, metric, start, len(output), om_lines is not None))
    CACHE.end(escaping, misses, samples_seen, whole=scrape_samples is None)
    return chunk


def joined_text(chunks: Sequence[Chunk], escaping: str = UNDERSCORES) -> bytes:
    """The exposition of `chunks`, as `merge_same_name` then `generate_text` would write their
    families (exporter.chunks); a family with OpenMetrics-only lines is merged and rewritten."""

    def rewrite(merged: Metric) -> str:
        known = CACHE.series.get(escaping, 0)  # the scrape's size is not this family's
        return "".join(text_chunk([merged], escaping, scrape_samples=known).lines)

    return joined_lines(chunks, rewrite).encode("utf-8")
