"""An OpenMetrics 1.0 encoder, byte-for-byte prometheus_client's `generate_latest`.

Why our own: Prometheus asks for OpenMetrics first, and the library's encoder formats every
line through `str.format`, sorted label items and name checks: measured ~10x the CPU of our
text encoder (exporter/text_format.py) on a full-stack scrape. This one keeps what depends only
on names and label values across scrapes, as text_format does: each family's HELP/TYPE/UNIT
lines, one `%`-template per sample name and label names, and each series' line up to its value
(found by one lookup of its name, label names and values). Exemplars are written by the
library's own function; a family this encoder fails on is handed to the library whole, so its
output (or its error) is the library's. tests/test_openmetrics_format.py compares the two on
varied families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.validation import _is_valid_legacy_metric_name

from exporter.chunks import Chunk, joined_lines
from exporter.text_format import (
    CACHE_LIMIT,
    SeriesCache,
    _escape_value,
    _go_float,
    filled,
    values_getter,
)

_INF = float("inf")

#: (line template, getter of its label values or None)
_Template = tuple[str, Callable[[Any], tuple[str, ...]] | None]
#: the OpenMetrics encoder's: a head is the family's HELP, TYPE (and UNIT) lines, keyed by
#: (name, type, help, unit); a line is the series' line up to its value
CACHE: SeriesCache[str, str, _Template] = SeriesCache()


class _One:
    """A registry of one family, for the library's encoder."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        return iter((self.metric,))


def _head(metric: Metric, escaping: str) -> str:
    """HELP, TYPE and UNIT lines as the library writes them."""
    name = om.escape_metric_name(metric.name, escaping)
    documentation = _escape_value(metric.documentation)
    text = f"# HELP {name} {documentation}\n# TYPE {name} {metric.type}\n"
    if metric.unit:
        text += f"# UNIT {name} {metric.unit}\n"
    return text


def _template(name: str, keys: tuple[str, ...], escaping: str) -> _Template:
    """`name{a="%s",b="%s"} ` by the library's name and label rules (labels sorted), and a
    getter of the label values in that order (None without labels: the line is the head)."""
    ordered = sorted(keys)
    pairs = ",".join(
        om.escape_label_name(k, escaping).replace("%", "%%") + '="%s"' for k in ordered
    )
    if escaping == om.ALLOWUTF8 and not _is_valid_legacy_metric_name(name):
        quoted = om.escape_metric_name(name, escaping)
        if not ordered:
            return "{" + quoted + "} ", None
        return "{" + quoted.replace("%", "%%") + "," + pairs + "} ", values_getter(ordered)
    # the library writes sample names through its label-name rule (a colon becomes `_`)
    escaped = om._escape(name, escaping, om._is_legacy_labelname_rune)
    if not ordered:
        return escaped + " ", None
    return escaped.replace("%", "%%") + "{" + pairs + "} ", values_getter(ordered)


def _line(
    name: str, labels: dict[str, str], escaping: str, templates: dict[tuple[str, ...], _Template]
) -> str:
    """A series' line up to its value, from its name's template (kept in `templates`)."""
    found = templates.get((name, *labels))
    if found is None:
        if len(templates) >= CACHE_LIMIT:
            templates.clear()
        found = templates[(name, *labels)] = _template(name, tuple(labels), escaping)
    template, values = found
    if values is None:
        return template
    return filled(template, values, labels)


def _exemplar(metric: Metric, sample: Sample, exemplar: Exemplar) -> str:
    """` # {labels} value [timestamp]`, by the library's own function (which refuses an
    exemplar on a sample that cannot have one)."""
    text: str = om._compose_exemplar_string(metric, sample, exemplar)  # type: ignore[no-untyped-call]
    return text


def _library(metric: Metric, escaping: str) -> str:
    """The family as the library writes it (its own errors included)."""
    body: bytes = om.generate_latest(_One(metric), escaping=escaping)  # type: ignore[no-untyped-call]
    return body.decode("utf-8").removesuffix("# EOF\n")


def generate_openmetrics(families: Iterable[Metric], escaping: str = om.UNDERSCORES) -> bytes:
    """The OpenMetrics 1.0 exposition of `families`, as the library's `generate_latest` writes
    it with the same `escaping` (`allow-utf-8` quotes names outside the legacy set, the default
    replaces their invalid characters with `_`). Native-histogram samples are left out there
    (OpenMetrics 1.0 has no form for them), and so here."""
    return ("".join(openmetrics_chunk(families, escaping).lines) + "# EOF\n").encode("utf-8")


def openmetrics_chunk(
    families: Iterable[Metric], escaping: str = om.UNDERSCORES, *, scrape_samples: int | None = None
) -> Chunk:
    """`families` (of distinct names) encoded without the final `# EOF`, for
    `joined_openmetrics` (`scrape_samples`: see text_format.text_chunk)."""
    chunk = Chunk()
    output = chunk.lines
    index = chunk.index
    append = output.append
    heads, lines, templates, keep_lines = CACHE.begin(escaping, scrape_samples)
    go_float = _go_float
    samples_seen = misses = 0

    for metric in families:
        start = len(output)
        try:
            key = (metric.name, metric.type, metric.documentation, metric.unit)
            head = heads.get(key)
            if head is None:
                head = heads[key] = _head(metric, escaping)
            append(head)
            samples_seen += len(metric.samples)
            for sample in metric.samples:
                name, labels, value, timestamp, exemplar, native = sample
                if keep_lines:
                    found = lines.get((name, *labels, *labels.values()))
                    if found is None:
                        found = _line(name, labels, escaping, templates)
                        misses += 1
                        if len(lines) < CACHE_LIMIT:
                            lines[(name, *labels, *labels.values())] = found
                else:
                    found = _line(name, labels, escaping, templates)
                if exemplar or native:  # as the library: exemplar checked, native left out
                    after = _exemplar(metric, sample, exemplar) if exemplar else ""
                    if native:
                        continue
                else:
                    after = ""
                if type(value) is not float:
                    value = float(value)
                if -_INF < value < 1e6:
                    text = repr(value)
                else:
                    text = go_float(value)
                if timestamp is None:
                    append(f"{found}{text}{after}\n")
                else:
                    append(f"{found}{text} {timestamp}{after}\n")
        except Exception:  # noqa: BLE001 - a family it refuses, and how: the library's
            del output[start:]
            append(_library(metric, escaping))
            index.append((metric.name, metric, start, start + 1, True))
        else:
            index.append((metric.name, metric, start, len(output), False))
    CACHE.end(escaping, misses, samples_seen, whole=scrape_samples is None)
    return chunk


def joined_openmetrics(chunks: Sequence[Chunk], escaping: str = om.UNDERSCORES) -> bytes:
    """The exposition of `chunks`, ended by `# EOF`, as `merge_same_name` then
    `generate_openmetrics` would write their families (exporter.chunks); a name with a family
    the library wrote is written by the library whole."""
    body = joined_lines(chunks, lambda merged: _library(merged, escaping))
    return (body + "# EOF\n").encode("utf-8")
