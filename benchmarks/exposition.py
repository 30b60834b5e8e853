"""Encoders side by side, and the cost of one native-histogram observation in the middleware.

    python benchmarks/exposition.py

Prints, from one run (best of interleaved rounds, CPU time):
- samples/s of the text encoder (exporter/text_format.py), the protobuf writer
  (exporter/protobuf_format.py), the same protobuf built with Google's protobuf runtime
  (messages from tests/metrics_pb.py: the alternative the writer was chosen over), our
  OpenMetrics encoder (exporter/openmetrics_format.py) and prometheus_client's, with ratios to
  the text encoder; peak memory of each;
- ns per observation of the middleware's request histogram (classic + native buckets, with
  and without an exemplar) beside classic-only and prometheus_client's Histogram.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.protobuf.internal.encoder import _VarintBytes  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client import Histogram as ClientHistogram  # noqa: E402
from prometheus_client.metrics_core import (  # noqa: E402
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.openmetrics import exposition as om_exposition  # noqa: E402

from benchmarks.harness import percentile  # noqa: E402
from collectors.native_histogram import Histograms, NativeSettings  # noqa: E402
from exporter.api_metrics import ApiMetrics  # noqa: E402
from exporter.exposition import Format, encode  # noqa: E402
from tests.metrics_pb import CLASSES  # noqa: E402

ROUNDS = 5


def synthetic(samples: int) -> list[Metric]:
    """Half counters, half gauges, two labels each (as benchmarks/scrape.py's family)."""
    counter = CounterMetricFamily("bench_ops", "Synthetic.", labels=["command", "db"])
    gauge = GaugeMetricFamily("bench_level", "Synthetic.", labels=["command", "db"])
    for i in range(samples // 2):
        labels = [f"cmd{i % 500}", f"db{i // 500}"]
        counter.add_metric(labels, float(i))
        gauge.add_metric(labels, i / 3)
    return [counter, gauge]


def with_histograms(series: int, native: NativeSettings | None = NativeSettings()) -> list[Metric]:  # noqa: B008
    """API-like request histograms: classic (+ native) buckets per series."""
    histograms = Histograms("bench_seconds", "Synthetic.", ["endpoint", "method"], native=native)
    for i in range(series):
        child = histograms.labels(f"/api/{i}", "GET")
        for j in range(200):
            child.observe(0.001 * 1.05 ** (j % 120))
    return [histograms.family()]


def runtime_protobuf(families: list[Metric]) -> bytes:
    """The same delimited messages built with Google's protobuf runtime (counters and gauges)."""
    family_class, metric_type = CLASSES["MetricFamily"], {"counter": 0, "gauge": 1}
    out = []
    for family in families:
        message = family_class(
            name=family.name + ("_total" if family.type == "counter" else ""),
            help=family.documentation,
            type=metric_type[family.type],
        )
        for sample in family.samples:
            metric = message.metric.add()
            for name in sorted(sample.labels):
                metric.label.add(name=name, value=sample.labels[name])
            if family.type == "counter":
                metric.counter.value = sample.value
            else:
                metric.gauge.value = sample.value
        body = message.SerializeToString()
        out.append(_VarintBytes(len(body)) + body)
    return b"".join(out)


def cpu_best(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        gc.collect()
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def peak_memory(work: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


class Registry:
    """The one method prometheus_client's encoders need."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def count_samples(families: list[Metric]) -> int:
    return sum(len(f.samples) for f in families)


def encoders(families: list[Metric], label: str, runtime: bool) -> None:
    samples = count_samples(families)
    candidates: dict[str, Callable[[], object]] = {
        "text (ours)": lambda: encode(families, Format.TEXT),
        "protobuf (ours)": lambda: encode(families, Format.PROTOBUF),
        "OpenMetrics (ours)": lambda: encode(families, Format.OPENMETRICS),
        "OpenMetrics (client)": lambda: om_exposition.generate_latest(Registry(families)),  # type: ignore[no-untyped-call]
    }
    if runtime:
        candidates["protobuf (runtime)"] = lambda: runtime_protobuf(families)
    times = {name: cpu_best(work) for name, work in candidates.items()}
    text = times["text (ours)"]
    print(f"\n{label}: {samples} samples, best of {ROUNDS} rounds")
    print(f"  {'encoder':22} {'M samples/s':>12} {'vs text':>8} {'bytes':>10} {'peak MB':>8}")
    for name, work in candidates.items():
        size = len(work())  # type: ignore[arg-type]
        peak = peak_memory(work) / 1e6
        rate = samples / times[name] / 1e6
        print(f"  {name:22} {rate:12.2f} {text / times[name]:8.2f} {size:10d} {peak:8.1f}")


def observe_round(observe: Callable[[float], object], count: int = 100_000) -> float:
    """Mean ns per observation over one round."""
    values = [0.001 * 1.07 ** (i % 150) for i in range(1000)]
    started = time.perf_counter()
    for i in range(count):
        observe(values[i % 1000])
    return (time.perf_counter() - started) / count * 1e9


def observations() -> None:
    native = ApiMetrics().timing("/api/fir/{fir_id}", "GET")[0]
    classic = ApiMetrics(native=None).timing("/api/fir/{fir_id}", "GET")[0]
    coarse = Histograms("x", "X.", native=NativeSettings(max_buckets=20)).labels()
    client = ClientHistogram("bench", "B.", registry=CollectorRegistry())
    trace = {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}
    rows = {
        "middleware histogram (classic+native)": native.observe,
        "  the same, with an exemplar": lambda v: native.observe(v, trace),
        "  native limited to 20 buckets": coarse.observe,
        "classic only (native=None)": classic.observe,
        "prometheus_client Histogram": client.observe,
    }
    rounds: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(ROUNDS * 3):  # interleaved, so a busy moment hits every variant alike
        for name, observe in rows.items():
            rounds[name].append(observe_round(observe))
    base = statistics.median(rounds["prometheus_client Histogram"])
    print(
        "\nobservation cost (ns per observe: median and p99 of interleaved rounds; target < 2000)"
    )
    for name, values in rounds.items():
        median = statistics.median(values)
        print(
            f"  {name:40} {median:8.0f} {percentile(values, 0.99):8.0f}"
            f"   x{median / base:.2f} of prometheus_client"
        )


def main() -> None:
    encoders(synthetic(200_000), "counters and gauges", runtime=True)
    encoders(with_histograms(500, None), "histograms, classic buckets only", runtime=False)
    encoders(with_histograms(500), "histograms, classic + native buckets", runtime=False)
    observations()


if __name__ == "__main__":
    main()
