"""Helpers shared by the task-queue tests: one collection read back as samples, real workers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collectors.base import Deadline
from collectors.task_queue import TaskQueueCollector
from exporter.config import load_config
from tests.support import ROOT, wait_until


def target_from(entry: Mapping[str, object]):
    """A Target built through the real config loader (so the tests use the YAML shape)."""
    config = load_config({"task_queues": [dict(entry)]})
    return config.targets["task_queues"][0]


class Scrape:
    """One whole collection of a collector, readable sample by sample."""

    def __init__(self, collector: TaskQueueCollector, seconds: float = 10.0) -> None:
        result = collector.run(Deadline.after(seconds))
        self.success = result.success
        self.reason = result.reason
        self.series_dropped = result.series_dropped
        self.families = list(result.families)
        registry = CollectorRegistry()
        families = self.families

        class Fixed:
            def collect(self):
                return families

        registry.register(Fixed())
        self.registry = registry

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def labels(self, name: str, label: str) -> set[str]:
        return {
            sample.labels[label]
            for family in self.families
            for sample in family.samples
            if sample.name == name
        }


@pytest.fixture(name="make_collector")
def make_collector_fixture():
    """Collectors made from Targets or config entries, closed (sockets and all) after the test."""
    made: list[TaskQueueCollector] = []

    def make(target) -> TaskQueueCollector:
        if isinstance(target, Mapping):
            target = target_from(target)
        collector = TaskQueueCollector(target)
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.close()


def scrape(collector: TaskQueueCollector) -> Scrape:
    return Scrape(collector)


@contextlib.contextmanager
def worker_process(args: list[str], env: Mapping[str, str] | None = None) -> Iterator[int]:
    """A real worker process (Celery, RQ) run from the checkout; SIGTERM'd on the way out."""
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"afx-tq-worker-{os.getpid()}.log"
    log = log_path.open("w+")
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


def wait_for_value(collector, name: str, expected: float, what: str, timeout: float = 30, **labels):
    """Scrape until `name{labels}` reads `expected` (workers run asynchronously)."""
    return wait_until(
        lambda: scrape(collector).value(name, **labels) == expected, timeout=timeout, what=what
    )
