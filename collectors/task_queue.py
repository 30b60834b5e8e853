"""Depth and health of background work at scrape time: Celery, RQ, Redis keys, SQL, RabbitMQ.

One collector per `task_queues:` entry. Its `kind` (and, for Celery, the transport) picks the
module that reads the broker into a `QueueReading`; this module applies the label budgets and
shapes the families, so every backend emits the same names:

- `background_tasks_queued{backend,queue,priority}`, `background_tasks_in_progress{backend,queue}`
- `background_tasks_processed_total{backend,type,status}`, `background_task_duration_seconds`
- `background_tasks_oldest_waiting_age_seconds`, `background_tasks_workers{backend,state}`,
  `background_tasks_queue_consumers`, `background_tasks_registry`, `background_tasks_queue_exists`
- `background_tasks_up{backend,kind}`

`backend` is the configured target name, so several queues systems never share a series.
Brokers' client libraries are imported only when a target of their kind is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from collectors.base import ScrapeContext, SourceCollector, classify_error, up_family
from collectors.checks import check_limit, check_positive
from collectors.queues_celery import CeleryInspector, CelerySettings, read_celery_redis
from collectors.queues_model import QueueReading
from collectors.queues_rabbitmq import read_rabbitmq
from collectors.queues_redis import RedisKey, read_redis_keys
from collectors.queues_rq import read_rq
from collectors.queues_sql import StatusMap, create_engine, read_sql
from collectors.secret import Secret, url_password

Kind = Literal["celery", "rq", "redis", "sql", "rabbitmq"]
OTHER = "other"
DEFAULT_CAP_SECONDS = 10.0

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
#: URL scheme -> Celery transport it implies
CELERY_TRANSPORTS = {**dict.fromkeys(REDIS_SCHEMES, "redis"), **dict.fromkeys(AMQP_SCHEMES, "amqp")}


def check_url(value: str) -> str:
    """A URL with a scheme; never echoes the value (it may hold a password)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if not parts.scheme:
        raise ValueError("not a valid URL (no scheme, e.g. redis://127.0.0.1:6379/0)")
    return value


def check_priority_steps(value: tuple[int, ...]) -> tuple[int, ...]:
    if not value or list(value) != sorted(set(value)) or value[0] != 0:
        raise ValueError("must be increasing whole numbers starting at 0, e.g. [0, 3, 6, 9]")
    return value


def check_non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


@dataclass(frozen=True)
class Target:
    """One `task_queues:` entry."""

    name: str
    kind: Kind
    url: str = field(metadata={"check": check_url})
    #: Queues to read; empty: discovered (RQ's `rq:queues`, Celery's `_kombu.binding.*`).
    queues: tuple[str, ...] = ()
    password: Secret | None = None
    password_file: str | None = field(default=None, metadata={"secret_file_for": "password"})
    timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    #: Celery: broker transport; inferred from the URL scheme when not set.
    transport: Literal["redis", "amqp"] | None = None
    #: Celery on Redis: kombu's `priority_steps` and `sep` transport options.
    priority_steps: tuple[int, ...] = field(
        default=(0, 3, 6, 9), metadata={"check": check_priority_steps}
    )
    sep: str = field(default="\x06\x16", metadata={"check": check_non_empty})
    #: Celery on Redis: kombu's `global_keyprefix`.
    key_prefix: str = ""
    #: Celery: the app's `control_exchange` setting (worker pidbox and remote control).
    control_exchange: str = field(default="celery", metadata={"check": check_non_empty})
    #: Celery: ask the workers for per-task totals (`inspect().stats()`).
    inspect: bool = False
    inspect_timeout_seconds: float = field(default=1.0, metadata={"check": check_positive})
    #: kind redis: the keys holding waiting tasks.
    keys: tuple[RedisKey, ...] = ()
    #: kind sql: a query returning queue, status, count [, priority, type, age_seconds].
    query: str | None = None
    waiting_statuses: tuple[str, ...] = ("queued", "pending", "waiting")
    running_statuses: tuple[str, ...] = ("running", "started", "in_progress")
    #: Label budgets: at most this many queues / task types, the rest summed under `other`.
    queue_limit: int = field(default=100, metadata={"check": check_limit})
    type_limit: int = field(default=50, metadata={"check": check_limit})

    def __post_init__(self) -> None:
        for problem in target_problems(self):
            raise ValueError(problem)

    @property
    def backend(self) -> str:
        """celery-redis, celery-amqp, rq, redis, sql or rabbitmq."""
        if self.kind == "celery":
            return f"celery-{self.celery_transport}"
        return self.kind

    @property
    def celery_transport(self) -> str:
        return self.transport or CELERY_TRANSPORTS.get(urlsplit(self.url).scheme, "redis")


#: option -> the kinds it applies to (an option set for another kind is a config error)
KIND_OPTIONS: dict[str, frozenset[str]] = {
    "transport": frozenset({"celery"}),
    "priority_steps": frozenset({"celery"}),
    "sep": frozenset({"celery"}),
    "key_prefix": frozenset({"celery"}),
    "inspect": frozenset({"celery"}),
    "inspect_timeout_seconds": frozenset({"celery"}),
    "control_exchange": frozenset({"celery"}),
    "queues": frozenset({"celery", "rq", "rabbitmq"}),
    "keys": frozenset({"redis"}),
    "query": frozenset({"sql"}),
    "waiting_statuses": frozenset({"sql"}),
    "running_statuses": frozenset({"sql"}),
}


def target_problems(target: Target) -> Iterator[str]:
    """Cross-field problems, each naming its key; values are never echoed."""
    defaults = Target.__dataclass_fields__
    for option, kinds in KIND_OPTIONS.items():
        if target.kind not in kinds and getattr(target, option) != defaults[option].default:
            yield f"{option}: applies to kind {' or '.join(sorted(kinds))}, not {target.kind}"
    scheme = urlsplit(target.url).scheme
    wanted = {
        "rq": REDIS_SCHEMES,
        "redis": REDIS_SCHEMES,
        "rabbitmq": AMQP_SCHEMES,
        "celery": REDIS_SCHEMES | AMQP_SCHEMES,
    }.get(target.kind)
    if wanted is not None and scheme not in wanted:
        yield f"url: kind {target.kind} needs a {'/'.join(sorted(wanted))} URL, got {scheme}://"
    if target.kind == "celery" and target.transport and scheme in CELERY_TRANSPORTS:
        if CELERY_TRANSPORTS[scheme] != target.transport:
            yield f"transport: {target.transport} does not match the URL scheme {scheme}://"
    if target.kind == "sql":
        yield from sql_url_problems(target.url)
        if not target.query:
            yield "query: required for kind sql"
    if target.kind == "redis" and not target.keys:
        yield "keys: required for kind redis"
    if (target.kind == "rabbitmq" or target.backend == "celery-amqp") and not target.queues:
        yield "queues: required for RabbitMQ (queues cannot be discovered by AMQP)"
    if target.password and url_password(target.url):
        yield "password: the url already has a password; set it in one place"


def with_password(url: str, password: str | None) -> str:
    """`url` with `password` in its userinfo (for clients that only take a URL)."""
    if not password:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = quote(parts.username or "", safe="")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def sql_url_problems(url: str) -> Iterator[str]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        yield "url: not a valid SQLAlchemy URL (dialect+driver://user@host/db)"


def build(options: None, target: Target) -> TaskQueueCollector:
    return TaskQueueCollector(target)


class TaskQueueCollector(SourceCollector):
    """Reads one task-queue backend. Clients may be injected (embedded mode); else made lazily."""

    kind = "task_queue"

    def __init__(self, target: Target, *, redis_client: Any = None, engine: Any = None) -> None:
        password = target.password.reveal() if target.password else ""
        super().__init__(target.name, secrets=[password, url_password(target.url) or ""])
        self.target = target
        self._password = password or None
        self._redis = redis_client
        self._engine = engine
        self._inspector: CeleryInspector | None = None
        self._readers: dict[str, Callable[[ScrapeContext, QueueReading, float], None]] = {
            "celery-redis": self._read_celery_redis,
            "celery-amqp": self._read_celery_amqp,
            "rq": self._read_rq,
            "redis": self._read_redis,
            "sql": self._read_sql,
            "rabbitmq": self._read_rabbitmq,
        }

    # -- clients ------------------------------------------------------------------------

    @property
    def cap(self) -> float:
        return self.target.timeout_seconds or DEFAULT_CAP_SECONDS

    def redis_client(self) -> Any:
        if self._redis is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # one attempt per call: a retry would outlive the scrape deadline
            self._redis = redis.Redis.from_url(
                self.target.url,
                password=self._password,
                socket_connect_timeout=self.cap,
                socket_timeout=self.cap,
                retry=Retry(NoBackoff(), 0),
            )
        return self._redis

    def sql_engine(self) -> Any:
        if self._engine is None:
            self._engine = create_engine(self.target.url, self._password, self.cap)
        return self._engine

    def celery_settings(self) -> CelerySettings:
        t = self.target
        return CelerySettings(
            t.queues, t.priority_steps, t.sep, t.key_prefix, 10_000, t.control_exchange
        )

    def inspector(self) -> CeleryInspector:
        if self._inspector is None:
            options: dict[str, Any] = {
                "priority_steps": list(self.target.priority_steps),
                "sep": self.target.sep,
            }
            if self.target.key_prefix:
                options["global_keyprefix"] = self.target.key_prefix
            url = with_password(self.target.url, self._password)
            self._inspector = CeleryInspector(url, options, self.target.control_exchange)
        return self._inspector

    # -- reading ------------------------------------------------------------------------

    def _read_celery_redis(self, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        workers = read_celery_redis(
            self.redis_client(), self.celery_settings(), ctx.deadline, reading
        )
        if self.target.inspect:
            self._inspect(ctx, reading, len(workers))

    def _read_celery_amqp(self, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        self._read_rabbitmq(ctx, reading, now)
        if self.target.inspect:
            self._inspect(ctx, reading, None)

    def _inspect(self, ctx: ScrapeContext, reading: QueueReading, workers: int | None) -> None:
        wait = ctx.deadline.timeout(self.target.inspect_timeout_seconds) * 0.8
        self.inspector().read(workers, wait, reading)

    def _read_rq(self, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        read_rq(self.redis_client(), self.target.queues, ctx.deadline, now, reading)

    def _read_redis(self, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        read_redis_keys(self.redis_client(), self.target.keys, ctx.deadline, now, reading)

    def _read_sql(self, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        statuses = StatusMap(
            frozenset(self.target.waiting_statuses), frozenset(self.target.running_statuses)
        )
        assert self.target.query is not None
        read_sql(self.sql_engine(), self.target.query, statuses, ctx.deadline, reading)

    def _read_rabbitmq(self, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        read_rabbitmq(self.target.url, self._password, self.target.queues, ctx.deadline, reading)

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        reading = QueueReading()
        self._readers[self.target.backend](ctx, reading, time.time())
        missing = sum(1 for found in reading.exists.values() if not found)
        if missing:
            ctx.note(f"{missing} configured queue(s) missing on the broker")
        yield from shape_families(self.target, reading, ctx)
        yield self.up(True)

    def up(self, value: bool) -> GaugeMetricFamily:
        return up_family(
            "background_tasks_up",
            "1 if the task-queue backend answered this scrape, 0 if not.",
            ["backend", "kind"],
            [self.target.name, self.target.backend],
            value,
        )

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

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        if self._engine is not None:
            self._engine.dispose()
        if self._inspector is not None:
            self._inspector.close()


# -- shaping --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Folding:
    """Which label values a budget keeps; the others become `other`."""

    kept: frozenset[str]

    def __call__(self, value: str) -> str:
        return value if value in self.kept else OTHER


def shape_families(target: Target, reading: QueueReading, ctx: ScrapeContext) -> Iterator[Metric]:
    """The reading as families, with queues and task types bounded by the target's budgets."""
    backend = target.name
    queue = Folding(ctx.keep_top(reading.queue_weights(), target.queue_limit))
    type_weights: dict[str, float] = {}
    for (task_type, _), count in reading.processed.items():
        type_weights[task_type] = type_weights.get(task_type, 0.0) + count
    for task_type in reading.duration:
        type_weights.setdefault(task_type, 0.0)
    task = Folding(ctx.keep_top(type_weights, target.type_limit))

    queued = GaugeMetricFamily(
        "background_tasks_queued",
        "Tasks waiting in a queue, by priority step where the broker keeps one.",
        labels=["backend", "queue", "priority"],
    )
    for (name, priority), value in fold(reading.queued, lambda k: (queue(k[0]), k[1])).items():
        queued.add_metric([backend, name, priority], value)
    yield queued

    in_progress = GaugeMetricFamily(
        "background_tasks_in_progress",
        "Tasks taken by a worker and not finished (Celery: unacked, RQ: started registry).",
        labels=["backend", "queue"],
    )
    for name, value in fold(reading.in_progress, queue).items():
        in_progress.add_metric([backend, name], value)
    if reading.in_progress:
        yield in_progress

    if reading.oldest_age:
        age = GaugeMetricFamily(
            "background_tasks_oldest_waiting_age_seconds",
            "Age of the oldest task still waiting in the queue.",
            labels=["backend", "queue"],
            unit="seconds",
        )
        for name, value in fold(reading.oldest_age, queue, max).items():
            age.add_metric([backend, name], value)
        yield age

    if reading.has_processed:
        processed = CounterMetricFamily(
            "background_tasks_processed",
            "Tasks processed by type and outcome, as the backend counts them (resets when "
            "workers restart).",
            labels=["backend", "type", "status"],
        )
        for (name, status), value in fold(reading.processed, lambda k: (task(k[0]), k[1])).items():
            processed.add_metric([backend, name, status], value)
        yield processed

    if reading.duration:
        duration = SummaryMetricFamily(
            "background_task_duration_seconds",
            "Time workers spent on tasks (RQ: total_working_time of live workers).",
            labels=["backend", "type"],
            unit="seconds",
        )
        totals: dict[str, tuple[float, float]] = {}
        for name, (count, seconds) in reading.duration.items():
            previous = totals.get(task(name), (0.0, 0.0))
            totals[task(name)] = (previous[0] + count, previous[1] + seconds)
        for name, (count, seconds) in sorted(totals.items()):
            duration.add_metric([backend, name], count_value=int(count), sum_value=seconds)
        yield duration

    if reading.has_workers:
        workers = GaugeMetricFamily(
            "background_tasks_workers",
            "Workers seen by the broker, by state.",
            labels=["backend", "state"],
        )
        for state, value in sorted(reading.workers.items()):
            workers.add_metric([backend, state], value)
        yield workers

    for family_name, help_text, values, combine in (
        (
            "background_tasks_queue_consumers",
            "Consumers attached to the queue (RabbitMQ passive declare).",
            reading.consumers,
            sum_values,
        ),
        (
            "background_tasks_queue_exists",
            "1 if the configured queue exists on the broker, 0 if the broker reported it missing.",
            {k: v for k, v in reading.exists.items() if queue(k) != OTHER},
            min,
        ),
    ):
        if values:
            family = GaugeMetricFamily(family_name, help_text, labels=["backend", "queue"])
            for name, value in fold(values, queue, combine).items():
                family.add_metric([backend, name], value)
            yield family

    if reading.registry:
        registry = GaugeMetricFamily(
            "background_tasks_registry",
            "Live entries of RQ's job registries per queue (started, finished, failed, "
            "deferred, scheduled, canceled).",
            labels=["backend", "queue", "registry"],
        )
        for (name, reg), value in fold(reading.registry, lambda k: (queue(k[0]), k[1])).items():
            registry.add_metric([backend, name, reg], value)
        yield registry


def sum_values(a: float, b: float) -> float:
    return a + b


def fold(
    values: Any,
    relabel: Callable[[Any], Any],
    combine: Callable[[float, float], float] = sum_values,
) -> dict[Any, float]:
    """Values keyed by their relabelled key (budget folding), combined, in a stable order."""
    result: dict[Any, float] = {}
    for key, value in values.items():
        new = relabel(key)
        result[new] = combine(result[new], value) if new in result else value
    return dict(sorted(result.items()))
