"""What one read of a task-queue backend found, before it is shaped into families.

Every backend module (`queues_celery`, `queues_rq`, `queues_redis`, `queues_sql`,
`queues_rabbitmq`) fills a `QueueReading`; `collectors.task_queue` applies the label budgets and
turns it into families. Keeping the reading plain data lets the shaping be tested without a
broker and keeps each backend module about its broker only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

#: Label value of `priority` where the backend has no priority for a queue.
NO_PRIORITY = "none"
#: Label value of `type` where the backend does not know the task's type.
ANY_TYPE = "all"


def _counts() -> defaultdict[str, float]:
    return defaultdict(float)


def _pair_counts() -> defaultdict[tuple[str, str], float]:
    return defaultdict(float)


@dataclass
class QueueReading:
    """Numbers read from one backend in one scrape. Only what the backend keeps is filled."""

    #: (queue, priority) -> tasks waiting
    queued: defaultdict[tuple[str, str], float] = field(default_factory=_pair_counts)
    #: queue -> tasks being worked on (reserved, unacked, started)
    in_progress: defaultdict[str, float] = field(default_factory=_counts)
    #: (type, status) -> tasks processed since the backend's counters began
    processed: defaultdict[tuple[str, str], float] = field(default_factory=_pair_counts)
    #: Histograms the exporter observed itself (`native_histogram.Histograms`: task run time,
    #: queue wait), served as they are (their type labels are already within budget)
    histograms: list[Any] = field(default_factory=list)
    #: queue -> age in seconds of the oldest waiting task
    oldest_age: dict[str, float] = field(default_factory=dict)
    #: state -> workers
    workers: defaultdict[str, float] = field(default_factory=_counts)
    #: queue -> consumers attached (RabbitMQ)
    consumers: dict[str, float] = field(default_factory=dict)
    #: (queue, registry) -> live entries of a job registry (RQ)
    registry: defaultdict[tuple[str, str], float] = field(default_factory=_pair_counts)
    #: queue -> 1 if it exists on the broker, 0 if it was reported missing (RabbitMQ)
    exists: dict[str, float] = field(default_factory=dict)
    #: () -> 1 while the exporter's own event receiver is connected, 0 while not (Celery)
    receiver: dict[tuple[()], float] = field(default_factory=dict)
    #: True when `workers` was read (so 0 workers is reported, not left out)
    has_workers: bool = False
    #: True when `processed` was read
    has_processed: bool = False

    def queue_names(self) -> set[str]:
        """Every queue this reading mentions."""
        names = {queue for queue, _ in self.queued}
        names.update(self.in_progress)
        names.update(self.oldest_age)
        names.update(self.consumers)
        names.update(queue for queue, _ in self.registry)
        names.update(self.exists)
        return names

    def queue_weights(self) -> dict[str, float]:
        """Work per queue (waiting + in progress + registries): what a queue budget keeps."""
        weights = dict.fromkeys(self.queue_names(), 0.0)
        for (queue, _), count in self.queued.items():
            weights[queue] += count
        for queue, count in self.in_progress.items():
            weights[queue] += count
        for (queue, _), count in self.registry.items():
            weights[queue] += count
        return weights
