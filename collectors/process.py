"""The exporter's own process, through prometheus_client's process, GC and platform collectors.

Kept apart from `system` so that turning the host collector off (where node_exporter runs)
still leaves the exporter's own CPU and memory visible.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from collectors.base import ScrapeContext, SourceCollector


def build(options: None = None, target: None = None) -> ExporterProcessCollector:
    return ExporterProcessCollector()


class ExporterProcessCollector(SourceCollector):
    collector = "process"

    def __init__(self, pid: str = "self") -> None:
        super().__init__("process")
        self._parts = (
            ProcessCollector(pid=lambda: pid, registry=None),
            GCCollector(registry=CollectorRegistry(auto_describe=False)),
            PlatformCollector(registry=None),
        )

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()
