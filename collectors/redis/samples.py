"""Samples and families built the way prometheus_client builds them, minus its per-call cost.

A Redis scrape builds a few hundred samples and ~45 families. `Sample(name, labels, value)`
runs the namedtuple's Python-level `__new__` (its defaults filled in by a generated function)
and `spec.family()` hashes the spec and copies a prototype; `tuple.__new__` with all six
fields, and a family copied from a prototype held here by name, make the same objects (equal,
same type) in a fraction of that. tests/test_redis_fast_paths.py checks both against the
library's own.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collectors.specs import MetricSpec

#: The fields `new_tuple` fills: a Sample of another shape must not be built by position.
FIELDS = ("name", "labels", "value", "timestamp", "exemplar", "native_histogram")
if Sample._fields != FIELDS:  # pragma: no cover - a prometheus_client with another Sample
    raise ImportError(f"prometheus_client's Sample has fields {Sample._fields}, not {FIELDS}")

#: `new_tuple(Sample, (name, labels, value, None, None, None))` is `Sample(name, labels, value)`.
new_tuple = tuple.__new__


class Prototype:
    """An empty family of one spec, copied once per scrape that serves it."""

    __slots__ = ("cls", "state")

    def __init__(self, spec: MetricSpec) -> None:
        family = spec.family()
        self.cls: type[Metric] = type(family)
        self.state: dict[str, Any] = family.__dict__

    def family(self, samples: list[Sample]) -> Metric:
        """A family of the spec holding `samples` (the list itself, not a copy)."""
        family: Metric = Metric.__new__(self.cls)
        family.__dict__.update(self.state)
        family.samples = samples
        return family
