"""Depth and health of background work at scrape time: Celery, RQ, Redis keys, SQL, RabbitMQ.

One collector per `task_queues:` entry. Its `kind` picks a target type from `KINDS` (one per
backend module, with only its own options); the target reads the broker into a
`QueueReading`, and this module applies the label budgets and shapes the families from
`SPECS`, so every backend emits the same names with `backend` = the configured target name.
Brokers' client libraries are imported only when a target of their backend is read.
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
from collectors.queues_outcomes import OTHER, Outcomes, OutcomeStore, OutcomeTracker
from collectors.queues_rabbitmq import RabbitMqTarget
from collectors.queues_redis import RedisKeysTarget
from collectors.queues_rq import RqTarget
from collectors.queues_sql import SqlTarget
from collectors.queues_target import Clients, QueueTarget
from collectors.specs import FamilySet, MetricSpec, counter, gauge, histogram

#: `kind:` -> the target type that reads it. Adding a backend: its module, one line here.
KINDS: Mapping[str, type[QueueTarget]] = {
    "celery": CeleryTarget,
    "rq": RqTarget,
    "redis": RedisKeysTarget,
    "sql": SqlTarget,
    "rabbitmq": RabbitMqTarget,
}

# fmt: off
UP = gauge("background_tasks_up", "1 if the task-queue backend answered this scrape, 0 if not.", ["backend", "kind"], source="all backends; `kind` is celery-redis, celery-amqp, rq, redis, sql or rabbitmq")  # noqa: E501
QUEUED = gauge("background_tasks_queued", "Tasks waiting in a queue, by priority step where the broker keeps one.", ["backend", "queue", "priority"], source="all backends: LLEN per Celery priority list, RQ queue list, Redis key; SQL waiting statuses; RabbitMQ ready messages")  # noqa: E501
IN_PROGRESS = gauge("background_tasks_in_progress", "Tasks taken by a worker and not finished (Celery: unacked, RQ: started registry).", ["backend", "queue"], source="Celery on Redis (unacked hash: prefetched + running), RQ (live started registry), SQL (running statuses)")  # noqa: E501
OLDEST_AGE = gauge("background_tasks_oldest_waiting_age_seconds", "Age of the oldest task still waiting in the queue.", ["backend", "queue"], unit="seconds", source="RQ (enqueued_at of the head job), Redis sorted sets with score_is_enqueue_time, SQL (age_seconds)")  # noqa: E501
PROCESSED = counter("background_tasks_processed_total", "Tasks processed by type and outcome (success, failure, retry, rejected, revoked). Counted by the exporter for Celery (task events) and RQ (finished and failed registries): never decreases while the exporter runs.", ["backend", "type", "status"], source="Celery with events (task-succeeded/failed/retried/rejected/revoked, per task name; inspect adds status accepted from the workers' own totals), RQ (type all: new members of the finished and failed registries), SQL (type column or all, status as stored)")  # noqa: E501
DURATION = histogram("background_task_duration_seconds", "Run time of tasks that succeeded or failed (5 ms to 1 h buckets; native buckets over protobuf).", ["backend", "type"], unit="seconds", source="Celery events (task-succeeded runtime; task-failed minus task-started), RQ (ended_at - started_at of newly finished and failed jobs)")  # noqa: E501
QUEUE_WAIT = histogram("background_task_queue_wait_seconds", "Time tasks waited before a worker started them: from task-sent (or task-received when the producer sends no task-sent events, or the ETA when later) to task-started.", ["backend", "type"], unit="seconds", source="Celery events (task-sent/task-received to task-started), RQ (started_at - enqueued_at of newly finished and failed jobs)")  # noqa: E501
EVENTS_CONNECTED = gauge("background_task_events_connected", "1 while the exporter's own event receiver is connected to the broker, 0 while it reconnects.", ["backend"], source="Celery with events (the default)")  # noqa: E501
WORKERS = gauge("background_tasks_workers", "Workers seen by the broker, by state.", ["backend", "state"], source="Celery with events (state online: workers whose heartbeats arrive), Celery on Redis without events (state online: pidbox bindings), RQ (by state; idle and busy always present)")  # noqa: E501
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


#: The families in the order they are served, before `background_tasks_up`.
SHAPES: tuple[Shape, ...] = (
    Shape(QUEUED, lambda r: r.queued, ("queue", ""), served=lambda r: True),
    Shape(IN_PROGRESS, lambda r: r.in_progress, ("queue",)),
    Shape(OLDEST_AGE, lambda r: r.oldest_age, ("queue",), max),
    Shape(PROCESSED, lambda r: r.processed, ("type", ""), served=lambda r: r.has_processed),
    Shape(WORKERS, lambda r: r.workers, ("",), served=lambda r: r.has_workers),
    Shape(CONSUMERS, lambda r: r.consumers, ("queue",)),
    Shape(EXISTS, lambda r: r.exists, ("queue",), min),
    Shape(REGISTRY, lambda r: r.registry, ("queue", "")),
    Shape(EVENTS_CONNECTED, lambda r: r.receiver, ()),
)
SPECS: tuple[MetricSpec, ...] = (
    UP,
    *(shape.spec for shape in SHAPES),
    DURATION,
    QUEUE_WAIT,
)


@dataclass(frozen=True)
class Target(QueueTarget):
    """A `task_queues:` entry as the config schema sees it: `kind` picks the type from KINDS."""

    schema_variants: ClassVar[tuple[str, Mapping[str, type]]] = ("kind", KINDS)


#: The outcome trackers of the collectors this process builds from its config: a reload that
#: keeps a target unchanged keeps its counts (see collectors/queues_outcomes.py).
CONFIGURED = OutcomeStore()


def build(options: None, target: QueueTarget) -> TaskQueueCollector:
    return TaskQueueCollector(target, outcomes=CONFIGURED)


class TaskQueueCollector(SourceCollector):
    """Reads one task-queue backend. Clients may be injected (embedded mode); else made lazily.

    Outcomes the exporter counts itself (Celery events, RQ registries) are kept by a tracker
    from `outcomes`, a store shared by the collectors of one target (a private one by default).
    """

    collector = "task_queue"

    def __init__(
        self,
        target: QueueTarget,
        *,
        redis_client: Any = None,
        engine: Any = None,
        outcomes: OutcomeStore | None = None,
    ) -> None:
        super().__init__(target.name, secrets=target.secrets())
        self.target = target
        self._store = outcomes or OutcomeStore()
        self._tracker = self._store.acquire(target, self._make_tracker)
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
            now = time.time()
            self.target.read(clients, ctx, reading, now)
            if self._tracker is not None:
                self._tracker.read(clients, ctx, reading, now)
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
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            self._store.release(self.target, tracker)

    def _make_tracker(self) -> OutcomeTracker | None:
        return self.target.outcome_tracker(self._outcomes)

    def _outcomes(self, statuses: tuple[str, ...]) -> Outcomes:
        target = self.target
        return Outcomes(target.name, target.type_limit, DURATION, QUEUE_WAIT, statuses)


# -- shaping --------------------------------------------------------------------------------


def shape_families(
    target: QueueTarget, reading: QueueReading, ctx: ScrapeContext
) -> Iterator[Metric]:
    """The reading as families, with queues and task types bounded by the target's budgets."""
    type_weights: dict[str, float] = {}
    for (task_type, _), count in reading.processed.items():
        type_weights[task_type] = type_weights.get(task_type, 0.0) + count
    weights = {"queue": reading.queue_weights(), "type": type_weights}
    limits = {"queue": target.queue_limit, "type": target.type_limit}
    kept = {label: keep_top(ctx, weights[label], limits[label]) for label in weights}
    over_budget = {label for label in weights if any(k not in kept[label] for k in weights[label])}

    families = FamilySet(target.name)
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
            family.add_metric([target.name, *labels], float(value))
    yield from families.families()
    for observed in reading.histograms:
        yield observed.family()


def keep_top(ctx: ScrapeContext, weights: Mapping[str, float], limit: int) -> frozenset[str]:
    """`ctx.keep_top` of the values other than `other`, which is always kept (a tracker's
    stable budget already folded into it)."""
    named = {key: weight for key, weight in weights.items() if key != OTHER}
    return ctx.keep_top(named, limit) | {OTHER}


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
