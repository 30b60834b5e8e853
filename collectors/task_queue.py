"""Depth and health of background work at scrape time: Celery, RQ, Redis keys, SQL, RabbitMQ.

One collector per `task_queues:` entry. Its `kind` picks a target type from `KINDS` (one per
backend module, with only its own options); the target reads the broker into a
`QueueReading`, and this module applies the label budgets and shapes the families from
`SPECS`, so every backend emits the same names with `backend` = the configured target name.
Brokers' client libraries are imported only when a target of their kind is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from prometheus_client.metrics_core import Metric

from collectors.base import ScrapeContext, SourceCollector, classify_error
from collectors.queues_celery import CeleryTarget
from collectors.queues_model import QueueReading
from collectors.queues_rabbitmq import RabbitMqTarget
from collectors.queues_redis import RedisKeysTarget
from collectors.queues_rq import RqTarget
from collectors.queues_sql import SqlTarget
from collectors.queues_target import Clients, QueueTarget
from collectors.specs import FamilySet, MetricSpec, MetricType, counter, gauge, summary

OTHER = "other"

#: `kind:` -> the target type that reads it. Adding a backend: its module, one line here.
KINDS: Mapping[str, type[QueueTarget]] = {
    "celery": CeleryTarget,
    "rq": RqTarget,
    "redis": RedisKeysTarget,
    "sql": SqlTarget,
    "rabbitmq": RabbitMqTarget,
}

# fmt: off
UP = gauge("background_tasks_up", "1 if the task-queue backend answered this scrape, 0 if not.", ["backend", "kind"], source="all kinds; `kind` is celery-redis, celery-amqp, rq, redis, sql or rabbitmq")  # noqa: E501
QUEUED = gauge("background_tasks_queued", "Tasks waiting in a queue, by priority step where the broker keeps one.", ["backend", "queue", "priority"], source="all kinds: LLEN per Celery priority list, RQ queue list, Redis key; SQL waiting statuses; RabbitMQ ready messages")  # noqa: E501
IN_PROGRESS = gauge("background_tasks_in_progress", "Tasks taken by a worker and not finished (Celery: unacked, RQ: started registry).", ["backend", "queue"], source="Celery on Redis (unacked hash: prefetched + running), RQ (live started registry), SQL (running statuses)")  # noqa: E501
OLDEST_AGE = gauge("background_tasks_oldest_waiting_age_seconds", "Age of the oldest task still waiting in the queue.", ["backend", "queue"], unit="seconds", source="RQ (enqueued_at of the head job), Redis sorted sets with score_is_enqueue_time, SQL (age_seconds)")  # noqa: E501
PROCESSED = counter("background_tasks_processed_total", "Tasks processed by type and outcome, as the backend counts them (resets when workers restart).", ["backend", "type", "status"], source="Celery with inspect (status accepted, per task name), RQ (type all, success/failure of live workers), SQL (type column or all, status as stored)")  # noqa: E501
DURATION = summary("background_task_duration_seconds", "Time workers spent on tasks (RQ: total_working_time of live workers).", ["backend", "type"], unit="seconds", source="RQ (total_working_time of live workers)")  # noqa: E501
WORKERS = gauge("background_tasks_workers", "Workers seen by the broker, by state.", ["backend", "state"], source="Celery on Redis (state online: pidbox bindings), RQ (by state; idle and busy always present)")  # noqa: E501
CONSUMERS = gauge("background_tasks_queue_consumers", "Consumers attached to the queue (RabbitMQ passive declare).", ["backend", "queue"], source="RabbitMQ, Celery on RabbitMQ")  # noqa: E501
EXISTS = gauge("background_tasks_queue_exists", "1 if the configured queue exists on the broker, 0 if the broker reported it missing.", ["backend", "queue"], source="RabbitMQ, Celery on RabbitMQ")  # noqa: E501
REGISTRY = gauge("background_tasks_registry", "Live entries of RQ's job registries per queue (started, finished, failed, deferred, scheduled, canceled).", ["backend", "queue", "registry"], source="RQ: ZCOUNT now +inf (expiry-scored registries), ZCARD (deferred, scheduled)")  # noqa: E501
# fmt: on


@dataclass(frozen=True)
class Shape:
    """How one family is filled from a reading: which of its values, which labels a budget folds
    (`queue`, `type`, or "" for none), how folded values combine, and when it is served."""

    spec: MetricSpec
    values: Callable[[QueueReading], Mapping[Any, Any]]
    folds: tuple[str, ...]
    combine: Callable[[Any, Any], Any] = lambda a, b: a + b
    #: Served even without samples when this says so (else only with samples).
    served: Callable[[QueueReading], bool] = lambda reading: False


def _add_pairs(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (a[0] + b[0], a[1] + b[1])


#: The families in the order they are served, before `background_tasks_up`.
SHAPES: tuple[Shape, ...] = (
    Shape(QUEUED, lambda r: r.queued, ("queue", ""), served=lambda r: True),
    Shape(IN_PROGRESS, lambda r: r.in_progress, ("queue",)),
    Shape(OLDEST_AGE, lambda r: r.oldest_age, ("queue",), max),
    Shape(PROCESSED, lambda r: r.processed, ("type", ""), served=lambda r: r.has_processed),
    Shape(DURATION, lambda r: r.duration, ("type",), _add_pairs),
    Shape(WORKERS, lambda r: r.workers, ("",), served=lambda r: r.has_workers),
    Shape(CONSUMERS, lambda r: r.consumers, ("queue",)),
    Shape(EXISTS, lambda r: r.exists, ("queue",), min),
    Shape(REGISTRY, lambda r: r.registry, ("queue", "")),
)
SPECS: tuple[MetricSpec, ...] = (UP, *(shape.spec for shape in SHAPES))


@dataclass(frozen=True)
class Target(QueueTarget):
    """A `task_queues:` entry as the config schema sees it: `kind` picks the type from KINDS."""

    schema_variants: ClassVar[tuple[str, Mapping[str, type]]] = ("kind", KINDS)


def build(options: None, target: QueueTarget) -> TaskQueueCollector:
    return TaskQueueCollector(target)


class TaskQueueCollector(SourceCollector):
    """Reads one task-queue backend. Clients may be injected (embedded mode); else made lazily."""

    kind = "task_queue"

    def __init__(
        self, target: QueueTarget, *, redis_client: Any = None, engine: Any = None
    ) -> None:
        super().__init__(target.name, secrets=target.secrets())
        self.target = target
        self._injected = {
            name: client
            for name, client in (("redis", redis_client), ("sql", engine))
            if client is not None
        }
        self._clients = Clients(self._injected)

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        clients = self._clients
        clients.started()
        try:
            reading = QueueReading()
            self.target.read(clients, ctx, reading, time.time())
        finally:
            clients.finished()
        missing = sum(1 for found in reading.exists.values() if not found)
        if missing:
            ctx.note(f"{missing} configured queue(s) missing on the broker")
        yield from shape_families(self.target, reading, ctx)
        yield self.up(True)

    def up(self, value: bool) -> Metric:
        return UP.single(1.0 if value else 0.0, self.target.name, self.target.kind_label)

    def down_families(self) -> list[Metric]:
        return [self.up(False)]

    def classify(self, exc: BaseException) -> str:
        reason = classify_error(exc)
        if reason == "error":
            message = str(exc).lower()
            if "connection refused" in message:
                return "refused"
            if "timeout" in message or "timed out" in message:
                return "timeout"
        return reason

    def abandon(self) -> None:
        """The stuck run keeps its clients (closed when it ends); the next run dials afresh."""
        stuck, self._clients = self._clients, Clients(self._injected)
        stuck.retire()

    def close(self) -> None:
        self._clients.close()


# -- shaping --------------------------------------------------------------------------------


def shape_families(
    target: QueueTarget, reading: QueueReading, ctx: ScrapeContext
) -> Iterator[Metric]:
    """The reading as families, with queues and task types bounded by the target's budgets."""
    type_weights: dict[str, float] = {}
    for (task_type, _), count in reading.processed.items():
        type_weights[task_type] = type_weights.get(task_type, 0.0) + count
    for task_type in reading.duration:
        type_weights.setdefault(task_type, 0.0)
    weights = {"queue": reading.queue_weights(), "type": type_weights}
    limits = {"queue": target.queue_limit, "type": target.type_limit}
    kept = {label: ctx.keep_top(weights[label], limits[label]) for label in weights}
    over_budget = {label for label in weights if len(kept[label]) < len(weights[label])}

    backend = target.name
    families = FamilySet(backend)
    for shape in SHAPES:
        values = shape.values(reading)
        if shape.spec is EXISTS and "queue" in over_budget:
            # a folded queue's existence says nothing: left out
            values = {k: v for k, v in values.items() if k in kept["queue"]}
        if not values and not shape.served(reading):
            continue
        family: Any = families.get(shape.spec)
        folding = [(i, kept[label]) for i, label in enumerate(shape.folds) if label in over_budget]
        for labels, value in fold(values, folding, shape.combine):
            if shape.spec.type is MetricType.SUMMARY:
                family.add_metric([backend, *labels], count_value=int(value[0]), sum_value=value[1])
            else:
                family.add_metric([backend, *labels], float(value))
    yield from families.families()


def fold(
    values: Mapping[Any, Any],
    folding: Sequence[tuple[int, frozenset[str]]],
    combine: Callable[[Any, Any], Any],
) -> list[tuple[tuple[str, ...], Any]]:
    """Values by label tuple, in a stable order. `folding` names the key positions under a
    budget and the values kept there; other values become `other`, combined with `combine`."""
    if not folding:  # nothing over budget: every key stays as it is
        return sorted((k if isinstance(k, tuple) else (k,), v) for k, v in values.items())
    result: dict[tuple[str, ...], Any] = {}
    for key, value in values.items():
        parts = list(key) if isinstance(key, tuple) else [key]
        for index, keep in folding:
            if parts[index] not in keep:
                parts[index] = OTHER
        new = tuple(parts)
        result[new] = combine(result[new], value) if new in result else value
    return sorted(result.items())
