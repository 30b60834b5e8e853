"""Shaping one scrape's families before encoding: one family per name, and the namespace.

Both run on every scrape over every family, so they copy only what they must: a family whose
name is unique is passed through as is, and renamed families are built without re-validating
names that were valid before the prefix (a prefix of metric-name characters keeps them valid).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

_PREFIX = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*_")


def merge_same_name(families: Sequence[Metric]) -> list[Metric]:
    """One family per metric name, as both exposition formats require.

    Several targets of one collector (two databases, two Redis) each yield their own family
    of the same name; their samples are joined under the first one's HELP and TYPE (a family
    whose type clashes with the first is left out, never emitted twice). Families whose name
    is unique are returned as they are; only the repeated names get a merged copy.
    """
    seen: dict[str, int] = {}
    for family in families:
        seen[family.name] = seen.get(family.name, 0) + 1
    if len(seen) == len(families):
        return list(families)
    merged: dict[str, Metric] = {}
    result: list[Metric] = []
    for family in families:
        if seen[family.name] == 1:
            result.append(family)
            continue
        existing = merged.get(family.name)
        if existing is None:
            copy = _copy(family, family.name)
            copy.samples = list(family.samples)
            merged[family.name] = copy
            result.append(copy)
        elif existing.type == family.type:
            existing.samples.extend(family.samples)
    return result


def with_prefix(families: Sequence[Metric], prefix: str) -> list[Metric]:
    """Copies of `families` with `prefix` before every family and sample name."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"{prefix!r} cannot start a metric name")
    make = tuple.__new__
    renamed = []
    for family in families:
        copy = _copy(family, prefix + family.name)
        copy.samples = [make(Sample, (prefix + s[0], *s[1:])) for s in family.samples]
        renamed.append(copy)
    return renamed


def _copy(family: Metric, name: str) -> Metric:
    """A shallow copy of `family` under `name` (its samples list still shared)."""
    copy: Metric = Metric.__new__(type(family))
    copy.__dict__.update(family.__dict__)
    copy.name = name
    return copy
