"""UTF-8 metric and label names for scrapers that cannot take them: Prometheus's escaping schemes.

A Prometheus 3 scraper says in `Accept` how names outside the legacy character set
(`[a-zA-Z_:][a-zA-Z0-9_:]*`) should reach it: `escaping=allow-utf-8` (as they are, quoted in
the text formats), `underscores` (each invalid character -> `_`), `dots` (`_` -> `__`,
`.` -> `_dot_`, other invalid -> `__`) or `values` (`U__` prefix, `_` -> `__`, each invalid
character -> `_<hex code point>_`). As in Prometheus's own `EscapeMetricFamily`, names that are
already legacy-valid are never changed, so this exporter's own families (all legacy names)
look the same under every scheme; label values are never escaped. The suffixes a type adds
(`_total`, `_bucket`, `_count`, `_sum`, `_created`, `_info`) are appended after escaping, so
a family and its samples keep matching names in every format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric

ALLOW_UTF8 = "allow-utf-8"
UNDERSCORES = "underscores"
DOTS = "dots"
VALUES = "values"
SCHEMES = (ALLOW_UTF8, UNDERSCORES, DOTS, VALUES)

_LEGACY = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def is_legacy(name: str) -> bool:
    return _LEGACY.fullmatch(name) is not None


def _legacy_char(char: str, position: int) -> bool:
    return char.isascii() and (char.isalpha() or char in "_:" or (char.isdigit() and position > 0))


def escape_name(name: str, scheme: str) -> str:
    """`name` under `scheme`; legacy-valid names and `allow-utf-8` leave it unchanged."""
    if scheme == ALLOW_UTF8 or not name or is_legacy(name):
        return name
    out = []
    if scheme == UNDERSCORES:
        out = [c if _legacy_char(c, i) else "_" for i, c in enumerate(name)]
    elif scheme == DOTS:
        for i, char in enumerate(name):
            if char == "_":
                out.append("__")
            elif char == ".":
                out.append("_dot_")
            else:
                out.append(char if _legacy_char(char, i) else "__")
    elif scheme == VALUES:
        out.append("U__")
        for i, char in enumerate(name):
            if char == "_":
                out.append("__")
            elif _legacy_char(char, i):
                out.append(char)
            elif 0xD800 <= ord(char) <= 0xDFFF:  # a lone surrogate is not valid UTF-8
                out.append("_FFFD_")
            else:
                out.append(f"_{ord(char):x}_")
    else:
        raise ValueError(f"unknown escaping scheme {scheme!r}")
    return "".join(out)


def _needs_escaping(family: Metric) -> bool:
    if not is_legacy(family.name):
        return True
    seen: set[str] = set()
    for sample in family.samples:
        for label in sample.labels:
            if label not in seen:
                seen.add(label)
                if not is_legacy(label):
                    return True
    return False


def escape_families(families: Iterable[Metric], scheme: str) -> list[Metric]:
    """Families with names escaped for `scheme`; families that need nothing are passed as is."""
    out: list[Metric] = []
    for family in families:
        if scheme == ALLOW_UTF8 or not _needs_escaping(family):
            out.append(family)
            continue
        name = escape_name(family.name, scheme)
        copy = Metric(name, family.documentation, family.type, family.unit)
        prefix_length = len(family.name)
        for sample in family.samples:
            if sample.name.startswith(family.name):
                sample_name = name + sample.name[prefix_length:]
            else:
                sample_name = escape_name(sample.name, scheme)
            labels = {escape_name(k, scheme): v for k, v in sample.labels.items()}
            copy.samples.append(sample._replace(name=sample_name, labels=labels))
        out.append(copy)
    return out
