"""An OpenMetrics 1.0 encoder, byte-for-byte prometheus_client's `generate_latest`.

Why our own: Prometheus asks for OpenMetrics first, and the library's encoder formats every
line through `str.format`, sorted label items and name checks: measured ~9x the CPU of our text
encoder (exporter/text_format.py) on a full-stack scrape. This one keeps what depends only on
names and label values across scrapes, as text_format does: each family's HELP/TYPE/UNIT
lines, and each series' line up to its value, found by one lookup of its name, label names and
values. A family whose samples carry exemplars or native histograms (or anything this encoder
does not write itself) is handed to the library whole, so its output is the library's.
tests/test_openmetrics_format.py compares the two on varied families.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om
from prometheus_client.validation import _is_valid_legacy_metric_name

from exporter.text_format import CACHE_LIMIT, _escape_value, _go_float

_INF = float("inf")

#: escaping -> (name, type, help, unit) -> the family's HELP, TYPE (and UNIT) lines
_HEADS: dict[str, dict[tuple[str, str, str, str], str]] = {}
#: escaping -> (sample name, *label names, *label values, in the sample's order) -> line head
_LINES: dict[str, dict[tuple[str, ...], str]] = {}


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


def _line(name: str, labels: dict[str, str], escaping: str) -> str:
    """A sample's line up to its value: the library's name and label rules, once per series."""
    pairs = ",".join(
        f'{om.escape_label_name(k, escaping)}="{_escape_value(v)}"'
        for k, v in sorted(labels.items())
    )
    if escaping == om.ALLOWUTF8 and not _is_valid_legacy_metric_name(name):
        quoted = om.escape_metric_name(name, escaping)
        return "{" + quoted + ("," + pairs if pairs else "") + "} "
    # the library writes sample names through its label-name rule (a colon becomes `_`)
    escaped = om._escape(name, escaping, om._is_legacy_labelname_rune)
    return escaped + ("{" + pairs + "}" if pairs else "") + " "


def _library(metric: Metric, escaping: str) -> str:
    """The family as the library writes it (its own errors included)."""
    body: bytes = om.generate_latest(_One(metric), escaping=escaping)  # type: ignore[no-untyped-call]
    return body.decode("utf-8").removesuffix("# EOF\n")


def generate_openmetrics(families: Iterable[Metric], escaping: str = om.UNDERSCORES) -> bytes:
    """The OpenMetrics 1.0 exposition of `families`, as the library's `generate_latest` writes
    it with the same `escaping` (`allow-utf-8` quotes names outside the legacy set, the default
    replaces their invalid characters with `_`). Native-histogram samples are left out there
    (OpenMetrics 1.0 has no form for them), and so here."""
    output: list[str] = []
    append = output.append
    heads = _HEADS.get(escaping)
    lines = _LINES.get(escaping)
    if heads is None or len(heads) > CACHE_LIMIT:
        heads = _HEADS[escaping] = {}
    if lines is None or len(lines) > CACHE_LIMIT:
        lines = _LINES[escaping] = {}
    go_float = _go_float

    for metric in families:
        start = len(output)
        try:
            key = (metric.name, metric.type, metric.documentation, metric.unit)
            head = heads.get(key)
            if head is None:
                head = heads[key] = _head(metric, escaping)
            append(head)
            for sample in metric.samples:
                name, labels, value, timestamp, exemplar, native = sample
                if exemplar is not None or native is not None:
                    raise _Unusual
                found = lines.get((name, *labels, *labels.values()))
                if found is None:
                    found = lines[(name, *labels, *labels.values())] = _line(name, labels, escaping)
                if type(value) is not float:
                    value = float(value)
                if -_INF < value < 1e6:
                    text = repr(value)
                else:
                    text = go_float(value)
                if timestamp is None:
                    append(f"{found}{text}\n")
                else:
                    append(f"{found}{text} {timestamp}\n")
        except Exception:  # noqa: BLE001 - exemplars, native buckets, odd values: the library's
            del output[start:]
            append(_library(metric, escaping))
    append("# EOF\n")
    return "".join(output).encode("utf-8")


class _Unusual(Exception):
    """A sample this encoder leaves to the library (exemplar, native histogram)."""
