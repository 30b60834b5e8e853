"""CPU the scrape engine itself spends per scrape, apart from any source's I/O.

    python benchmarks/engine.py [--scrapes 500] [--profile]

Collectors that hand back prebuilt families (shaped like the full stack: the host, a Redis,
two databases whose families share names and must be merged, a model server) are scraped
through `ScrapeEngine.render` on one event loop, as the HTTP endpoint does, in the text format
with and without gzip and with a namespace; and scrapes of no unit and of five units that
yield nothing (the fixed cost per scrape and per unit). Printed: CPU per scrape (this
process, all threads) and samples per scrape. `--profile` adds the top functions of a
cProfile of the event-loop thread. A copy run inside another source tree measures that tree,
to compare before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.metrics_core import (  # noqa: E402
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from collectors.base import Deadline, ScrapeContext, SourceCollector  # noqa: E402
from exporter.exposition import Format  # noqa: E402
from exporter.scrape import ScrapeEngine, Unit  # noqa: E402


class Prebuilt(SourceCollector):
    """Hands back the same families every time (no I/O): only the engine's work is measured."""

    def __init__(self, collector: str, name: str, families: list[Metric]) -> None:
        super().__init__(name)
        self.collector = collector  # type: ignore[misc]
        self.families = families

    def fetch(self, ctx: ScrapeContext) -> list[Metric]:
        return self.families


def families(prefix: str, label: str, target: str, count: int, per: int) -> list[Metric]:
    result: list[Metric] = []
    for i in range(count):
        if i % 2:
            family: Metric = CounterMetricFamily(
                f"{prefix}_thing{i}", "A counter.", labels=[label, "kind"]
            )
        else:
            family = GaugeMetricFamily(f"{prefix}_level{i}", "A gauge.", labels=[label, "kind"])
        for j in range(per):
            family.add_metric([target, f"k{j}"], float(i * j))  # type: ignore[attr-defined]
        result.append(family)
    return result


def full_stack() -> list[Unit]:
    collectors = [
        Prebuilt("system", "system", families("system", "mode", "all", 30, 2)),
        Prebuilt("redis", "cache", families("cache", "cache", "cache", 80, 4)),
        Prebuilt("database", "main", families("db", "database", "main", 40, 6)),
        Prebuilt("database", "replica", families("db", "database", "replica", 40, 6)),
        Prebuilt("model_servers", "llm", families("model_server", "server", "llm", 10, 2)),
    ]
    return [Unit(c.collector, c.name, c) for c in collectors]


def empty_units(count: int) -> list[Unit]:
    """Units whose collectors yield nothing: the engine's fixed cost per unit."""
    return [Unit(f"empty{i}", "t", Prebuilt(f"empty{i}", "t", [])) for i in range(count)]


def measure(engine: ScrapeEngine, scrapes: int, fmt: Format, gzipped: bool) -> list[float]:
    async def rounds() -> list[float]:
        cpu = []
        for _ in range(scrapes):
            before = time.process_time()
            await engine.render(engine.units, Deadline.after(5), fmt, gzipped)
            cpu.append(time.process_time() - before)
        return cpu

    return asyncio.run(rounds())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    samples = sum(len(f.samples) for u in full_stack() for f in u.collector.fetch(None))  # type: ignore[attr-defined, arg-type]
    print(f"{len(full_stack())} units, {samples} samples from the collectors per scrape")
    for label, units in (("no units", []), ("5 empty units", empty_units(5))):
        engine = ScrapeEngine(units)
        measure(engine, 20, Format.TEXT, False)
        cpu = measure(engine, options.scrapes, Format.TEXT, False)
        print(f"{label:<16} CPU per scrape: median {statistics.median(cpu) * 1e3:.3f} ms")
        engine.close()
    for label, namespace, gzipped in (
        ("text", "", False),
        ("text+gzip", "", True),
        ("text, namespace", "afirgen", False),
    ):
        engine = ScrapeEngine(full_stack(), namespace=namespace)
        measure(engine, 20, Format.TEXT, gzipped)  # warm up threads and caches
        cpu = measure(engine, options.scrapes, Format.TEXT, gzipped)
        print(
            f"{label:<16} CPU per scrape: median {statistics.median(cpu) * 1e3:.3f} ms, "
            f"mean {statistics.fmean(cpu) * 1e3:.3f} ms"
        )
        engine.close()
    if options.profile:
        engine = ScrapeEngine(full_stack())
        measure(engine, 20, Format.TEXT, False)
        profile = cProfile.Profile()
        profile.enable()
        measure(engine, options.scrapes, Format.TEXT, False)
        profile.disable()
        print("\nevent-loop thread, cumulative:")
        pstats.Stats(profile).sort_stats("tottime").print_stats(18)
        engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
