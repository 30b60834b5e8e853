"""A scrape encoded unit by unit (exporter.exposition.encoded_chunk, joined) writes the same bytes
as its families merged and encoded at once, and the engine encodes a unit's share while a
slower source is still being waited for."""

from __future__ import annotations

import asyncio
import copy
import random
import threading
import time

import pytest
from prometheus_client import exposition as library_exposition
from prometheus_client import parser
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as library_openmetrics
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.samples import Exemplar

from collectors.base import Deadline, ScrapeContext, SourceCollector
from exporter import bodies, exposition, openmetrics_format
from exporter.exposition import Format, encode, encoded_chunk, joined
from exporter.families import merge_same_name
from exporter.scrape import ScrapeEngine, Unit
from tests.test_text_format import varied_families

FORMATS = [
    Format.TEXT,
    Format.OPENMETRICS,
    Format(exposition.Encoding.TEXT, escaping="allow-utf-8"),
    Format(exposition.Encoding.OPENMETRICS, escaping="dots"),
]


class Registry:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self):
        return iter(self.families)


def relabelled(family: Metric, target: str) -> Metric:
    """The same family as another target of the collector would yield it."""
    other = copy.copy(family)
    other.samples = [s._replace(labels={**s.labels, "target": target}) for s in family.samples]
    return other


def units(seed: int) -> list[list[Metric]]:
    """Four units' families (distinct names within each, as the engine hands them over): two
    targets of one collector (every name twice, counters with `_created`, in another order),
    a unit with one of their names but another type (left out), and one of its own."""
    rng = random.Random(seed)
    first = varied_families(seed)
    second = [relabelled(f, "b") for f in first]
    rng.shuffle(second)
    clash = GaugeMetricFamily("ops", "Ops as a gauge: another type, left out.", value=1.0)
    own = CounterMetricFamily("own", "Own.", labels=["k"], created=1.7e9)
    for i in range(rng.randint(1, 5)):
        own.add_metric([f"k{i}"], float(i), created=1.7e9 + i)
    return [first, second, [clash], [own]]


def chunks(share: list[list[Metric]], fmt: Format, **options) -> list:
    return [encoded_chunk(unit, fmt, **options) for unit in share]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.name}-{f.escaping}")
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("created", [True, False])
def test_chunks_joined_are_the_merged_families_encoded(fmt, seed, created):
    share = units(seed)
    merged = merge_same_name([f for unit in share for f in unit])
    assert joined(chunks(share, fmt, created=created), fmt) == encode(merged, fmt, created=created)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.name}-{f.escaping}")
def test_chunks_of_distinct_names_are_joined_as_they_were_written(fmt):
    share = [varied_families(1), [GaugeMetricFamily("own", "Own.", value=2.0)]]
    assert joined(chunks(share, fmt), fmt) == encode([*share[0], *share[1]], fmt)


@pytest.mark.parametrize("seed", range(3))
def test_chunks_joined_are_what_the_library_writes_of_the_merged_families(seed):
    share = units(seed)
    merged = merge_same_name([f for unit in share for f in unit])
    text = joined(chunks(share, Format.TEXT), Format.TEXT)
    assert text == library_exposition.generate_latest(Registry(merged))
    om = joined(chunks(share, Format.OPENMETRICS), Format.OPENMETRICS)
    assert om == library_openmetrics.generate_latest(Registry(merged))


def test_a_family_the_library_writes_is_merged_before_it_writes_it(monkeypatch):
    """A family our OpenMetrics encoder fails on is written by the library whole: the library
    is then given the family merged across units, as when the families are merged first."""
    line = openmetrics_format._line

    def failing_on_g(name, *args):
        if name == "g":
            raise RuntimeError("not ours to write")
        return line(name, *args)

    monkeypatch.setattr(openmetrics_format, "_line", failing_on_g)
    first = GaugeMetricFamily("g", "G.", labels=["t"])
    first.add_metric(["a"], 1.0)
    second = GaugeMetricFamily("g", "G.", labels=["t"])
    second.add_metric(["b"], 2.0)
    other = GaugeMetricFamily("h", "H.", value=3.0)
    share = [[first, other], [second]]
    written = chunks(share, Format.OPENMETRICS)
    assert [entry[4] for chunk in written for entry in chunk.index] == [True, False, True]
    merged = merge_same_name([first, other, second])
    body = joined(written, Format.OPENMETRICS)
    assert body == library_openmetrics.generate_latest(Registry(merged))
    assert b'g{t="a"} 1.0\ng{t="b"} 2.0\n' in body


def test_a_family_the_library_refuses_is_refused_when_encoded_early():
    refused = GaugeMetricFamily("g", "G.", labels=["t"])
    refused.add_metric(["b"], 2.0)
    refused.samples[0] = refused.samples[0]._replace(exemplar=Exemplar({"trace_id": "x"}, 1.0))
    with pytest.raises(ValueError) as early:
        encoded_chunk([refused], Format.OPENMETRICS)
    with pytest.raises(ValueError) as whole:
        encode([refused], Format.OPENMETRICS)
    assert early.value.args == whole.value.args


class Source(SourceCollector):
    """Yields `families` once `release` is set (or at once)."""

    collector = "source"

    def __init__(self, name: str, families: list[Metric], release: threading.Event | None = None):
        super().__init__(name)
        self.families = families
        self.release = release
        self.finished_at = 0.0

    def fetch(self, ctx: ScrapeContext):
        if self.release is not None:
            assert self.release.wait(ctx.deadline.remaining())
        self.finished_at = time.monotonic()
        yield from self.families


@pytest.mark.parametrize("fmt", [Format.TEXT, Format.OPENMETRICS], ids=lambda f: f.name)
def test_the_engine_encodes_a_unit_while_a_slower_one_is_collected(fmt, monkeypatch):
    """The quick unit's families are encoded before the slow unit answers (in its collection
    thread, or on the loop if it was done before the scrape could ask), and served."""
    encoded: list[tuple[str, str, float]] = []
    real = bodies.encoded_chunk

    def recording(families, *args, **kwargs):
        families = list(families)
        names = ",".join(sorted({f.name for f in families}))
        encoded.append((names, threading.current_thread().name, time.monotonic()))
        return real(families, *args, **kwargs)

    monkeypatch.setattr(bodies, "encoded_chunk", recording)
    release = threading.Event()
    quick = Source("quick", [GaugeMetricFamily("quick_value", "Quick.", value=3.0)])
    slow = Source("slow", [GaugeMetricFamily("slow_value", "Slow.", value=4.0)], release)
    engine = ScrapeEngine(
        [Unit("source", "slow", slow), Unit("source", "quick", quick)], namespace="ns"
    )

    async def scraped() -> bytes:
        rendering = asyncio.ensure_future(
            engine.render(engine.units, Deadline.after(10), fmt, False)
        )
        while not any(names == "ns_quick_value" for names, _, _ in encoded):
            await asyncio.sleep(0.01)
            assert time.monotonic() < started + 5, "the quick unit was not encoded early"
        release.set()
        return await rendering

    started = time.monotonic()
    try:
        body = asyncio.run(scraped())
        quick_encoding = next(e for e in encoded if e[0] == "ns_quick_value")
        assert quick_encoding[2] < slow.finished_at
        if fmt is Format.OPENMETRICS:
            parsed = openmetrics_parser.text_string_to_metric_families(body.decode())
        else:
            parsed = parser.text_string_to_metric_families(body.decode())
        values = {s.name: s.value for f in parsed for s in f.samples if not s.labels}
        assert (values["ns_slow_value"], values["ns_quick_value"]) == (4.0, 3.0)
    finally:
        engine.close()
