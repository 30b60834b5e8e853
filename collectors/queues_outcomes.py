"""Task outcomes the exporter counts itself: Celery's task events, RQ's newly finished jobs.

A broker keeps no lasting totals: Celery workers send events and forget, RQ's registries and
worker records come and go. So the exporter counts what it saw, in an `Outcomes` object that
lives as long as the exporter process watches the target, never in a scrape's reading:
`background_tasks_processed_total` then never decreases while workers come and go, and the run
time and queue wait are histograms the exporter observes (classic and native buckets,
collectors/native_histogram.py).

An `OutcomeTracker` (one per target, for backends with outcomes) feeds an `Outcomes`. Trackers are
kept in an `OutcomeStore` keyed by the target's settings: a config reload that leaves a target
unchanged hands the new collector the same tracker (counts, histograms, Celery's event
connection), as if nothing had happened; a changed or removed target's tracker is closed when
its last collector closes.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator
from typing import Any

from collectors.base import ScrapeContext
from collectors.native_histogram import Histograms
from collectors.queues_model import QueueReading
from collectors.specs import MetricSpec

#: Task run time and queue wait, 5 ms to 1 h: tasks run from milliseconds (a cache refresh) to
#: an hour (a batch import); past an hour only `+Inf` says more.
TASK_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0,
)  # fmt: skip
OTHER = "other"
#: Statuses a task type is served with from its first sighting, so a series exists at 0 before
#: its first increment (Prometheus' `increase()` misses the first value of a new series).
STATUSES = ("success", "failure", "retry", "rejected", "revoked")
#: Names folded under `other` that are remembered, to count each one once in series_dropped.
FOLDED_MEMORY = 10_000


def histograms(spec: MetricSpec) -> Histograms:
    return Histograms(spec.name, spec.help, spec.labels, buckets=TASK_BUCKETS, unit=spec.unit)


class Outcomes:
    """Counts by (type, status) and run time / queue wait histograms of one target.

    Task types get their label in order of first sighting, at most `type_limit` of them; later
    ones are `other` for good, so a folded count never moves back out (a counter of `other`
    that shrank would read as a reset). Thread-safe: Celery's event thread writes, scrapes read.
    """

    def __init__(
        self,
        target_name: str,
        type_limit: int,
        duration: MetricSpec,
        wait: MetricSpec,
        statuses: tuple[str, ...] = STATUSES,
    ) -> None:
        self.target_name = target_name
        self.type_limit = type_limit
        self.statuses = statuses
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], float] = {}
        self._types: set[str] = set()
        self._folded: set[str] = set()
        self.duration = histograms(duration)
        self.wait = histograms(wait)

    def label(self, task_type: str) -> str:
        """The `type` label value of a task name: its own within the budget, else `other`."""
        if task_type in self._types:
            return task_type
        with self._lock:
            if task_type in self._types:
                return task_type
            within = len(self._types) < self.type_limit
            label = task_type if within else OTHER
            if within:
                self._types.add(task_type)
            elif len(self._folded) < FOLDED_MEMORY:
                self._folded.add(task_type)
            for status in self.statuses:
                self._counts.setdefault((label, status), 0.0)
        self.duration.labels(self.target_name, label)  # its series too, empty
        self.wait.labels(self.target_name, label)
        return label

    def count(self, task_type: str, status: str, amount: float = 1.0) -> None:
        key = (self.label(task_type), status)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + amount

    def observe_duration(self, task_type: str, seconds: float) -> None:
        """One run time (seconds), under the type's label."""
        self.duration.labels(self.target_name, self.label(task_type)).observe(max(0.0, seconds))

    def observe_wait(self, task_type: str, seconds: float) -> None:
        self.wait.labels(self.target_name, self.label(task_type)).observe(max(0.0, seconds))

    @property
    def folded(self) -> int:
        """Task names counted under `other` (each once, up to FOLDED_MEMORY)."""
        return len(self._folded)

    def fill(self, reading: QueueReading, ctx: ScrapeContext) -> None:
        """Put the totals so far into `reading`; the histograms are served as they are."""
        with self._lock:
            counts = dict(self._counts)
        for key, value in counts.items():
            reading.processed[key] += value
        reading.has_processed = True
        reading.histograms.extend((self.duration, self.wait))
        ctx.series_dropped += self.folded


class OutcomeTracker(abc.ABC):
    """Follows one target's task outcomes into `outcomes` between (or during) scrapes."""

    def __init__(self, outcomes: Outcomes) -> None:
        self.outcomes = outcomes

    @abc.abstractmethod
    def read(self, clients: Any, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        """Bring the counts up to date (after the target's own read), then fill `reading`."""

    def close(self) -> None:  # noqa: B027 - a tracker without a connection has nothing to stop
        """Stop following (no new collector uses this target). Must not block for long."""


class OutcomeStore:
    """Trackers by target, shared by the collectors of one target across config reloads.

    `acquire` before the old collector's `release` (a reload builds the new units first, then
    closes the old ones), so an unchanged target's tracker is never closed in between.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Any, tuple[OutcomeTracker, int]] = {}

    def acquire(self, key: Any, make: Callable[[], OutcomeTracker | None]) -> OutcomeTracker | None:
        """The key's tracker, made on first use; None (nothing held) when `make` makes none.
        A key that cannot be hashed gets a tracker of its own, shared with nobody."""
        try:
            hash(key)
        except TypeError:
            return make()
        with self._lock:
            tracker, users = self._held.get(key, (None, 0))
            if tracker is None:
                tracker = make()
                if tracker is None:
                    return None
            self._held[key] = (tracker, users + 1)
            return tracker

    def release(self, key: Any, tracker: OutcomeTracker) -> None:
        """One collector less for `key`; the tracker is closed when it was the last."""
        with self._lock:
            held, users = self._held.get(key, (None, 0))
            if held is tracker and users > 1:
                self._held[key] = (tracker, users - 1)
                return
            if held is tracker:
                del self._held[key]
        tracker.close()

    def __iter__(self) -> Iterator[OutcomeTracker]:
        with self._lock:
            return iter([tracker for tracker, _ in self._held.values()])
