"""Metric specs: every family a collector serves, declared once at the top of its module.

A spec holds what a reader needs to find a number: its exposed name, type, help, labels, unit
and the source it is read from. Collectors build their families from specs (never from a name
and a help string repeated where the sample is added), and `exporter.docs_tables` writes the
metric tables of the docs from the same specs, so the three cannot drift apart.

Names are written as exposed: counters end in `_total` (prometheus_client strips and re-adds
it), so one search for a metric name finds its spec.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.samples import Sample


class MetricType(enum.Enum):
    """The exposition types a spec can have (prometheus_client's type names)."""

    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    INFO = "info"


@dataclass(frozen=True)
class MetricSpec:
    """One family: exposed name, type, help, label names, unit and where the value comes from."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    #: The base unit (`seconds`, `bytes`, `ratio`...); announced in OpenMetrics when the name
    #: carries it.
    unit: str = ""
    #: What the number is read from (an INFO field, a view or query, an engine's family), for
    #: the generated docs. Never a secret.
    source: str = ""
    #: label names (None: the spec's own) -> an empty family to copy (see `family`), kept on
    #: the spec so a lookup does not hash the whole frozen spec; no part of init, repr, eq or hash
    _prototypes: dict[tuple[str, ...] | None, Metric] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.type is MetricType.COUNTER and not self.name.endswith("_total"):
            raise ValueError(f"{self.name}: a counter's name ends in _total")
        if self.type is MetricType.INFO and not self.name.endswith("_info"):
            raise ValueError(f"{self.name}: an info metric's name ends in _info")

    def family(self, labels: Sequence[str] | None = None) -> Metric:
        """An empty family of this spec (its own label names, or `labels` when given).

        Made by copying a prototype built (and validated by prometheus_client) once per spec
        and label names: scrapes make hundreds of families, and re-validating the same names
        was most of what making one cost.
        """
        key = None if labels is None else tuple(labels)  # None: the spec's own (a quick key)
        prototype = self._prototypes.get(key)
        if prototype is None:
            names = self.labels if key is None else key
            prototype = self._prototypes[key] = self._new_family(list(names))
        family: Metric = Metric.__new__(type(prototype))
        family.__dict__.update(prototype.__dict__)
        family.samples = []
        return family

    def _new_family(self, names: list[str]) -> Metric:
        unit = self._unit()
        if self.type is MetricType.COUNTER:
            return CounterMetricFamily(self.name, self.help, labels=names, unit=unit)
        if self.type is MetricType.GAUGE:
            return GaugeMetricFamily(self.name, self.help, labels=names, unit=unit)
        if self.type is MetricType.HISTOGRAM:
            return HistogramMetricFamily(self.name, self.help, labels=names, unit=unit)
        if self.type is MetricType.SUMMARY:
            return SummaryMetricFamily(self.name, self.help, labels=names, unit=unit)
        return InfoMetricFamily(self.name.removesuffix("_info"), self.help, labels=names)

    def single(self, value: float, *label_values: str) -> Metric:
        """A gauge or counter family with one sample."""
        family = self.family()
        add(family, label_values, value)
        return family

    def _unit(self) -> str:
        base = self.name.removesuffix("_total") if self.type is MetricType.COUNTER else self.name
        return self.unit if self.unit and base.endswith("_" + self.unit) else ""


#: The sample name's suffix for the family types `add` takes (subclasses: see `_suffix`).
_SUFFIXES: dict[type[Metric], str] = {GaugeMetricFamily: "", CounterMetricFamily: "_total"}
_new_tuple = tuple.__new__


def add(family: Metric, label_values: Sequence[str], value: float) -> None:
    """Add one sample to a gauge or counter family built from a spec.

    The sample is the one `add_metric` appends, made directly: scrapes add hundreds, and the
    method's list copy, keyword defaults and namedtuple constructor were most of its cost.
    """
    suffix = _SUFFIXES.get(type(family))
    if suffix is None:
        suffix = _suffix(family)
    names = family._labelnames  # type: ignore[attr-defined]
    labels = dict(zip(names, label_values, strict=False))  # add_metric's zip
    sample = (family.name + suffix, labels, float(value), None, None, None)
    family.samples.append(_new_tuple(Sample, sample))


def _suffix(family: Metric) -> str:
    if isinstance(family, CounterMetricFamily):
        return "_total"
    if isinstance(family, GaugeMetricFamily):
        return ""
    raise TypeError(f"{family.name}: add() takes gauges and counters, not {family.type}")


def gauge(name: str, help: str, labels: Iterable[str] = (), **extra: str) -> MetricSpec:
    return MetricSpec(name, MetricType.GAUGE, help, tuple(labels), **extra)


def counter(name: str, help: str, labels: Iterable[str] = (), **extra: str) -> MetricSpec:
    return MetricSpec(name, MetricType.COUNTER, help, tuple(labels), **extra)


def histogram(name: str, help: str, labels: Iterable[str] = (), **extra: str) -> MetricSpec:
    return MetricSpec(name, MetricType.HISTOGRAM, help, tuple(labels), **extra)


def summary(name: str, help: str, labels: Iterable[str] = (), **extra: str) -> MetricSpec:
    return MetricSpec(name, MetricType.SUMMARY, help, tuple(labels), **extra)


def info(name: str, help: str, labels: Iterable[str] = (), **extra: str) -> MetricSpec:
    return MetricSpec(name, MetricType.INFO, help, tuple(labels), **extra)


def by_name(specs: Iterable[MetricSpec]) -> Mapping[str, MetricSpec]:
    """Specs keyed by exposed name; a name declared twice is a programming error."""
    table: dict[str, MetricSpec] = {}
    for spec in specs:
        if spec.name in table and table[spec.name] != spec:
            raise ValueError(f"{spec.name} is declared twice with different specs")
        table[spec.name] = spec
    return table


class FamilySet:
    """The families of one collection, each made from its spec on first use, in first-use order.

    `prefix` holds label values every sample starts with (the target's `database`, `cache`,
    `server` or `backend`), so call sites pass only the labels that vary.
    """

    def __init__(self, *prefix: str) -> None:
        self.prefix = prefix
        self._families: dict[str, Metric] = {}

    def get(self, spec: MetricSpec) -> Metric:
        family = self._families.get(spec.name)
        if family is None:
            family = self._families[spec.name] = spec.family()
        return family

    def add(self, spec: MetricSpec, value: float, *label_values: str) -> None:
        family = self._families.get(spec.name)
        if family is None:
            family = self._families[spec.name] = spec.family()
        add(family, (*self.prefix, *label_values) if self.prefix else label_values, value)

    def histogram(
        self,
        spec: MetricSpec,
        buckets: Sequence[tuple[str, float]],
        sum_value: float,
        *label_values: str,
    ) -> None:
        """Cumulative `(le, count)` buckets ending in `+Inf`, and the sum of observations."""
        family = self.get(spec)
        if not isinstance(family, HistogramMetricFamily):
            raise TypeError(f"{spec.name} is not a histogram")
        family.add_metric(
            [*self.prefix, *label_values], [(le, float(n)) for le, n in buckets], sum_value
        )

    def summary(self, spec: MetricSpec, count: float, sum_value: float, *label_values: str) -> None:
        family = self.get(spec)
        if not isinstance(family, SummaryMetricFamily):
            raise TypeError(f"{spec.name} is not a summary")
        family.add_metric([*self.prefix, *label_values], int(count), sum_value)

    def families(self) -> list[Metric]:
        return list(self._families.values())
