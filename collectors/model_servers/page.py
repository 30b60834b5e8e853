"""An engine's metrics page, read into numbers per model: only the families `engines` names.

An engine's page holds hundreds of series per model (vLLM: histograms of tokens per step,
prefill and decode times, speculative decoding...); the normalised view needs a handful. One
regular expression finds only the sample lines of wanted families (a wanted name, then `{` or
a space, at the start of a line), and `parse_sample` reads those lines: the text format's
sample line (labels with escapes, a value, an optional timestamp), tested to read exactly what
prometheus_client's `text_string_to_metric_families` reads, at a fifth of its cost (its parser
was most of a scrape's CPU on a vLLM page). No I/O here: `inference` fetches the page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from collectors.model_servers.engines import HISTOGRAMS, Into, Read

INF = math.inf

#: One `name="value"` pair and the comma after it; values escape `\\`, `\"` and `\n`.
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*,?')
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"n": "\n", "\\": "\\", '"': '"'}


class PageError(Exception):
    """The page is not the text format (a parse error on a wanted family's line)."""


def parse_sample(line: str) -> tuple[str, dict[str, str], float]:
    """`name{labels} value [timestamp]` as the text format writes a sample; PageError if not."""
    name, labels, value, _ = _parse(line)
    return name, labels, value


def _parse(line: str) -> tuple[str, dict[str, str], float, int]:
    """`parse_sample`, and where its label set ends (the index of its `}`; -1 without one)."""
    brace, space = line.find("{"), line.find(" ")
    labels: dict[str, str] = {}
    end = -1
    if brace != -1 and (space == -1 or brace < space):
        name, pos = line[:brace], brace + 1
        while True:
            while pos < len(line) and line[pos] in " \t":
                pos += 1
            if pos < len(line) and line[pos] == "}":
                break
            match = _LABEL.match(line, pos)
            if match is None:
                raise PageError(f"bad label set in {line[:60]!r}")
            key, text = match.group(1), match.group(2)
            labels[key] = (
                _ESCAPE.sub(lambda m: _UNESCAPED.get(m[1], "\\" + m[1]), text)
                if "\\" in text
                else text
            )
            pos = match.end()
        end = pos
        rest = line[pos + 1 :].split()
    else:
        name, _, tail = line.partition(" ")
        rest = tail.split()
    return name, labels, _value(rest, line), end


def _value(rest: list[str], line: str) -> float:
    """The sample's value from what follows its name and labels (value, optional timestamp)."""
    if not 1 <= len(rest) <= 2:
        raise PageError(f"bad sample line {line[:60]!r}")
    try:
        return float(rest[0])
    except ValueError:
        raise PageError(f"bad value in {line[:60]!r}") from None


@dataclass
class Histogram:
    """Cumulative buckets by upper bound (`INF` last) and the sum of observations."""

    buckets: dict[float, float] = field(default_factory=dict)
    total: float = 0.0

    def merge(self, other: Histogram) -> None:
        for bound, count in other.buckets.items():
            self.buckets[bound] = self.buckets.get(bound, 0.0) + count
        self.total += other.total

    @property
    def count(self) -> float:
        return self.buckets.get(INF, 0.0)


@dataclass
class Numbers:
    """One model's numbers from one page."""

    values: dict[Into, float] = field(default_factory=dict)
    histograms: dict[Into, Histogram] = field(default_factory=dict)

    def add(self, into: Into, value: float) -> None:
        if into is Into.KV_CACHE:  # a share per engine: the fullest one, not a sum
            self.values[into] = max(self.values.get(into, 0.0), value)
        else:
            self.values[into] = self.values.get(into, 0.0) + value

    def histogram(self, into: Into) -> Histogram:
        found = self.histograms.get(into)
        if found is None:
            found = self.histograms[into] = Histogram()
        return found

    def merge(self, other: Numbers) -> None:
        for into, value in other.values.items():
            self.add(into, value)
        for into, histogram in other.histograms.items():
            self.histogram(into).merge(histogram)

    def weight(self) -> float:
        """How much traffic this model had (ranks models for the label budget)."""
        v = self.values
        requests = v.get(Into.SUCCESS, 0.0) + v.get(Into.FAILURE, 0.0)
        latency = self.histograms.get(Into.LATENCY)
        return requests or v.get(Into.LATENCY_COUNT, 0.0) or (latency.count if latency else 0.0)


class _Node(dict[str, "_Node"]):
    """A trie node: the next characters (`""` marks a word's end)."""


def _trie(words: Iterable[str]) -> str:
    """A regular expression matching exactly `words`, their common prefixes factored out."""
    root = _Node()
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, _Node())
        node[""] = _Node()

    def pattern(node: _Node) -> str:
        branches = [re.escape(c) + pattern(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return pattern(root)


#: Label sets (and series' steps) remembered per reader (an engine's pages repeat the same
#: ones every scrape).
MAX_LABEL_SETS = 10_000

#: What one sample feeds: the model (None: the server's single model), the normalised family,
#: the part (`value`, `bucket` or `sum`), and the factor to base units (for a bucket, its bound
#: in base units: the key of its count).
Step = tuple[str | None, Into, str, float]


class PageReader:
    """Reads one engine's pages: the wanted sample names, and what each sample feeds.

    A label set's text, once parsed, is remembered with its labels, and a series' text (name
    and label set) with its steps (what it feeds: pure functions of the text; the values are
    parsed every time), so the same series cost a dict look-up on later scrapes.
    """

    def __init__(self, reads: Iterable[Read]) -> None:
        self.by_sample: dict[str, list[tuple[Read, str]]] = {}
        for read in reads:
            base = read.family.removesuffix("_total")
            if read.into in HISTOGRAMS:
                parts = {"_bucket": "bucket", "_sum": "sum", "_count": "count"}
            elif read.part:
                parts = {f"_{read.part}": "value"}
            else:
                parts = {"": "value", "_total": "value"}
            for suffix, part in parts.items():
                self.by_sample.setdefault(base + suffix, []).append((read, part))
        # a wanted name at the start of a line, then `{` or a space; the names as a trie, so
        # the regex engine (searching for the newline in C) drops every other line at once
        self._lines = re.compile(f"\n(({_trie(self.by_sample)})[{{ ][^\n]*)")
        families = {n.removesuffix("_bucket") for n in self.by_sample} | set(self.by_sample)
        self._types = re.compile(f"\n# TYPE ({_trie(families)})(?=[ \n]|\\Z)")
        self._labels: dict[str, dict[str, str]] = {}
        self._steps: dict[str, tuple[Step, ...]] = {}

    def wanted_lines(self, text: str) -> tuple[list[tuple[str, str]], bool]:
        """The sample lines of wanted families with their names (comments and every other
        family dropped), and whether the page declares any wanted family (`# TYPE`), samples or
        not: an idle KServe has declared its histogram but has no sample of it yet."""
        page = "\n" + text
        kept: list[tuple[str, str]] = self._lines.findall(page)  # (line, name) each
        return kept, bool(kept) or self._types.search(page) is not None

    def sample(self, line: str, name: str) -> tuple[dict[str, str], float]:
        """A wanted line's labels and value (`name` is how the line starts); PageError if the
        line is not a sample."""
        labels, value, _ = self._sample(line, name)
        return labels, value

    def _sample(self, line: str, name: str) -> tuple[dict[str, str], float, bool]:
        """`sample`, and whether the line's labels are exactly its text up to its last `}`
        (so that text can key what depends on the labels alone)."""
        close = line.rfind("}")
        if line[len(name)] != "{" or close == -1:
            _, labels, value, _ = _parse(line)
            return labels, value, False
        key = line[len(name) : close + 1]
        known = self._labels.get(key)
        if known is not None:
            return known, _value(line[close + 1 :].split(), line), True
        _, labels, value, end = _parse(line)
        if end == close:  # the label set is exactly the key: the same text, the same labels
            if len(self._labels) >= MAX_LABEL_SETS:
                self._labels.clear()
            self._labels[key] = labels
        return labels, value, end == close

    def steps(self, name: str, labels: Mapping[str, str]) -> tuple[Step, ...]:
        """What a sample of `name` with `labels` feeds (nothing for a filtered-out series; the
        `_count` of a histogram only names its model); PageError for a bucket whose bound is
        not a number."""
        steps: list[Step] = []
        for read, part in self.by_sample[name]:
            if read.keep is not None and not read.keep(labels):
                continue
            model = None if read.model_label is None else labels.get(read.model_label, "")
            factor = read.scale
            if part == "bucket":
                le = labels.get("le", "+Inf")
                try:
                    bound = float(le)
                except ValueError:
                    raise PageError(f"bad bucket bound le={le[:20]!r} of {name}") from None
                factor = round(bound * read.scale, 12) if math.isfinite(bound) else INF
            steps.append((model, read.into, part, factor))
        return tuple(steps)

    def line_steps(self, line: str, name: str) -> tuple[tuple[Step, ...], float]:
        """A wanted line's steps and value: a series seen before costs a look-up of its text
        (name and label set) and the value's parse; PageError if the line is not a sample."""
        close = line.rfind("}")
        if close != -1:
            known = self._steps.get(line[: close + 1])
            if known is not None:
                return known, _value(line[close + 1 :].split(), line)
        labels, value, exact = self._sample(line, name)
        steps = self.steps(name, labels)
        if exact:  # the name and label set are exactly the text up to the `}`
            if len(self._steps) >= MAX_LABEL_SETS:
                self._steps.clear()
            self._steps[line[: close + 1]] = steps
        return steps, value

    def read(self, text: str) -> tuple[dict[str, Numbers], Numbers, bool]:
        """Numbers per model, those of families that name no model, and whether the page is
        the engine's at all (it declares or has a wanted family)."""
        by_model: dict[str, Numbers] = {}
        unnamed = Numbers()
        lines, known = self.wanted_lines(text)
        for line, name in lines:
            steps, value = self.line_steps(line, name)
            nan = math.isnan(value)
            for model, into, part, factor in steps:
                if model is None:
                    numbers = unnamed
                else:  # a model the page names, with numbers or not
                    numbers = by_model.get(model) or by_model.setdefault(model, Numbers())
                if nan:
                    continue
                if part == "value":
                    numbers.add(into, value * factor)
                elif part == "bucket":
                    buckets = numbers.histogram(into).buckets
                    buckets[factor] = buckets.get(factor, 0.0) + value
                elif part == "sum":  # (a histogram's count is its +Inf bucket)
                    numbers.histogram(into).total += value * factor
        return by_model, unnamed, known


def attribute(by_model: dict[str, Numbers], unnamed: Numbers, fallback: str) -> dict[str, Numbers]:
    """Numbers of families without a model label go to the server's single model: the one the
    page names, else `fallback` (what the probe learned), else model ""."""
    if not unnamed.values and not unnamed.histograms:
        return by_model
    names = [m for m in by_model if m]
    model = names[0] if len(names) == 1 else ("" if names else fallback)
    merged = dict(by_model)
    target = merged.get(model) or merged.setdefault(model, Numbers())
    target.merge(unnamed)
    return merged
