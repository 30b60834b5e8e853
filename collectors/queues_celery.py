"""Celery on Redis, read from kombu's keys (no Celery import unless `inspect` is on).

kombu's Redis transport keeps, per queue, one list per priority step: `QUEUE` for the first
step (and for messages without priority), `QUEUE<sep><step>` for the others (default steps
0, 3, 6, 9 and separator `\\x06\\x16`). Lower numbers are served first. An empty list does not
exist in Redis, so a missing key is a depth of 0. Messages a worker has taken but not yet
acknowledged (prefetched or running) are in the `unacked` hash, all queues together, each
value a JSON `[message, exchange, routing_key]`. Queues are bound in `_kombu.binding.<exchange>`
sets whose members are `routing_key<sep>pattern<sep>queue`; workers bind their
`<hostname>.celery.pidbox` queue to `celery.pidbox`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from collectors.base import Deadline, ScrapeContext
from collectors.checks import check_positive
from collectors.queues_celery_events import AppSettings, CeleryEvents
from collectors.queues_model import ANY_TYPE, QueueReading
from collectors.queues_outcomes import STATUSES, Outcomes, OutcomeTracker
from collectors.queues_rabbitmq import AMQP_SCHEMES, NEEDS_QUEUES, read_rabbitmq
from collectors.queues_redis_io import (
    CONNECTION_KEYS,
    REDIS_SCHEMES,
    RedisBroker,
    read_many,
    scan_keys,
    text,
)
from collectors.queues_target import Clients, check_not_empty

BINDING_PREFIX = "_kombu.binding."
DEFAULT_CONTROL_EXCHANGE = "celery"
DEFAULT_EVENT_EXCHANGE = "celeryev"
UNACKED_KEY = "unacked"
#: URL scheme -> the Celery transport it implies
TRANSPORTS = {**dict.fromkeys(REDIS_SCHEMES, "redis"), **dict.fromkeys(AMQP_SCHEMES, "amqp")}


def check_priority_steps(value: tuple[int, ...]) -> tuple[int, ...]:
    if not value or list(value) != sorted(set(value)) or value[0] != 0:
        raise ValueError("must be increasing whole numbers starting at 0, e.g. [0, 3, 6, 9]")
    return value


@dataclass(frozen=True, kw_only=True)
class CeleryTarget(RedisBroker):
    """`kind: celery`, on Redis (read from kombu's keys) or RabbitMQ (passive declares)."""

    kind: Literal["celery"] = field(default="celery", init=False)
    #: Queues to read; empty: discovered from the `_kombu.binding.*` sets (Redis only).
    queues: tuple[str, ...] = ()
    #: The broker transport; inferred from the URL scheme when not set.
    transport: Literal["redis", "amqp"] | None = None
    #: kombu's `priority_steps` and `sep` transport options (Redis).
    priority_steps: tuple[int, ...] = field(
        default=(0, 3, 6, 9), metadata={"check": check_priority_steps}
    )
    sep: str = field(default="\x06\x16", metadata={"check": check_not_empty})
    #: kombu's `global_keyprefix` (Redis).
    key_prefix: str = ""
    #: The app's `control_exchange` setting: workers bind `<hostname>.<it>.pidbox` queues.
    control_exchange: str = field(
        default=DEFAULT_CONTROL_EXCHANGE, metadata={"check": check_not_empty}
    )
    #: Follow the workers' task events and heartbeats (collectors/queues_celery_events.py).
    events: bool = True
    #: The app's `event_exchange` setting.
    event_exchange: str = field(default=DEFAULT_EVENT_EXCHANGE, metadata={"check": check_not_empty})
    #: Ask the workers for per-task totals (`inspect().stats()`).
    inspect: bool = False
    inspect_timeout_seconds: float = field(default=1.0, metadata={"check": check_positive})

    url_schemes: ClassVar[frozenset[str]] = REDIS_SCHEMES | AMQP_SCHEMES
    queue_discovery_limit: ClassVar[int] = 10_000

    def problems(self) -> Iterator[str]:
        yield from super().problems()
        implied = TRANSPORTS.get(urlsplit(self.url).scheme)
        if self.transport and implied and implied != self.transport:
            scheme = urlsplit(self.url).scheme
            yield f"transport: {self.transport} does not match the URL scheme {scheme}://"
        if self.transport_name == "amqp":
            if not self.queues:
                yield NEEDS_QUEUES
            redis_only = [key for key in CONNECTION_KEYS if getattr(self, key) not in (None, True)]
            if redis_only:
                yield f"{', '.join(redis_only)}: apply to Celery on Redis only"

    @property
    def transport_name(self) -> str:
        return self.transport or TRANSPORTS.get(urlsplit(self.url).scheme, "redis")

    @property
    def kind_label(self) -> str:
        return f"celery-{self.transport_name}"

    @property
    def pidbox_exchange(self) -> str:
        return f"{self.control_exchange}.pidbox"

    @property
    def internal_exchanges(self) -> frozenset[str]:
        """Exchanges whose bindings are Celery's own plumbing, not task queues."""
        return frozenset(
            {
                self.pidbox_exchange,
                f"reply.{self.pidbox_exchange}",
                self.event_exchange,
                DEFAULT_EVENT_EXCHANGE,
                "celery.pidbox",
            }
        )

    def read(self, clients: Clients, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        workers: int | None = None  # unknown on AMQP: the inspect wait cannot end early
        if self.transport_name == "redis":
            workers = len(read_celery_redis(self.redis(clients), self, ctx.deadline, reading))
        else:
            read_rabbitmq(self.url, self.secret, self.queues, ctx.deadline, reading)
        if self.inspect:
            wait = ctx.deadline.timeout(self.inspect_timeout_seconds) * 0.8
            inspector = clients.get("inspector", self.inspector, CeleryInspector.close)
            inspector.read(workers, wait, reading)

    def inspector(self) -> CeleryInspector:
        return CeleryInspector(self.app_settings())

    def app_settings(self) -> AppSettings:
        """How an app of the exporter's own reaches the workers (inspect, events)."""
        options: dict[str, Any] = {"priority_steps": list(self.priority_steps), "sep": self.sep}
        if self.key_prefix:
            options["global_keyprefix"] = self.key_prefix
        return AppSettings(
            broker_url=with_password(self.url, self.secret),
            transport_options=options,
            control_exchange=self.control_exchange,
            event_exchange=self.event_exchange,
            connect_timeout=self.cap,
        )

    def outcome_tracker(
        self, outcomes: Callable[[tuple[str, ...]], Outcomes]
    ) -> OutcomeTracker | None:
        if not self.events:
            return None
        secrets = tuple(s for s in self.secrets() if s)
        # on Redis, a redis-py subscription that looks no key up; on RabbitMQ, kombu
        subscriber = self.redis_client if self.transport_name == "redis" else None
        return CeleryEvents(outcomes(STATUSES), self.app_settings(), secrets, subscriber)


def celery_app(settings: AppSettings, name: str) -> Any:
    """A Celery app that is never the current one and never retries a connection by itself."""
    from celery import Celery

    app = Celery(name, broker=settings.broker_url, set_as_current=False)
    app.conf.broker_transport_options = dict(settings.transport_options)
    app.conf.control_exchange = settings.control_exchange
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = 0
    app.conf.broker_connection_timeout = settings.connect_timeout
    return app


def with_password(url: str, password: str | None) -> str:
    """`url` with `password` in its userinfo (for clients that only take a URL)."""
    if not password:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = quote(parts.username or "", safe="")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def priority_key(queue: str, step: int, settings: CeleryTarget) -> str:
    """The list holding `queue`'s messages of priority `step` (kombu's `_q_for_pri`)."""
    name = f"{queue}{settings.sep}{step}" if step else queue
    return settings.key_prefix + name


def parse_binding(member: bytes | str, sep: str) -> tuple[str, str]:
    """(routing_key, queue) of one `_kombu.binding.*` member."""
    parts = text(member).split(sep)
    if len(parts) < 3:
        return "", parts[-1]
    return parts[0], parts[2]


def unacked_routing_keys(values: Iterable[bytes | str]) -> list[tuple[str, str]]:
    """(exchange, routing_key) of every message in the `unacked` hash (unparseable: skipped)."""
    found = []
    for value in values:
        try:
            _, exchange, routing_key = json.loads(value)
        except (ValueError, TypeError):
            continue
        found.append((str(exchange or ""), str(routing_key or "")))
    return found


def worker_names(pidbox_queues: Iterable[str], pidbox_exchange: str = "celery.pidbox") -> list[str]:
    """Worker hostnames from the queues bound to the pidbox (`<hostname>.celery.pidbox`)."""
    suffix = "." + pidbox_exchange
    return sorted({q[: -len(suffix)] for q in pidbox_queues if q.endswith(suffix)})


def read_bindings(
    client: Any, settings: CeleryTarget, deadline: Deadline
) -> dict[str, list[tuple[str, str]]]:
    """exchange -> [(routing_key, queue)] for every `_kombu.binding.*` set."""
    prefix = settings.key_prefix + BINDING_PREFIX
    keys: list[bytes | str]
    if settings.queues:
        # Celery binds each queue to a direct exchange of the same name: no SCAN needed
        keys = [prefix + settings.pidbox_exchange, *(prefix + q for q in settings.queues)]
    else:
        keys = list(scan_keys(client, prefix + "*", deadline, settings.queue_discovery_limit))
    replies = read_many(client, [("SMEMBERS", key) for key in keys], deadline)
    bindings: dict[str, list[tuple[str, str]]] = {}
    for key, members in zip(keys, replies, strict=True):
        exchange = text(key)[len(prefix) :]
        bindings[exchange] = [parse_binding(m, settings.sep) for m in members]
    return bindings


def task_queues(bindings: dict[str, list[tuple[str, str]]], internal: frozenset[str]) -> list[str]:
    """Queues bound to any exchange but Celery's internal ones."""
    found = {
        queue
        for exchange, members in bindings.items()
        if exchange not in internal
        for _, queue in members
    }
    return sorted(found)


def queue_of(exchange: str, routing_key: str, bindings: dict[str, list[tuple[str, str]]]) -> str:
    """The queue an unacked message came from: its binding, else its routing key."""
    for bound_key, queue in bindings.get(exchange, ()):
        if bound_key == routing_key:
            return queue
    return routing_key


def read_celery_redis(
    client: Any, settings: CeleryTarget, deadline: Deadline, reading: QueueReading
) -> list[str]:
    """Fill depths per priority step, unacked per queue and workers; return the worker names."""
    bindings = read_bindings(client, settings, deadline)
    queues: Sequence[str] = settings.queues or task_queues(bindings, settings.internal_exchanges)
    steps = settings.priority_steps
    commands: list[tuple[str | bytes | int | float, ...]] = [
        ("LLEN", priority_key(queue, step, settings)) for queue in queues for step in steps
    ]
    commands.append(("HVALS", settings.key_prefix + UNACKED_KEY))
    replies = read_many(client, commands, deadline)
    depths = iter(replies[:-1])
    for queue in queues:
        for step in steps:
            reading.queued[(queue, str(step))] += float(next(depths))
    for queue in queues:
        reading.in_progress[queue] += 0.0
    for exchange, routing_key in unacked_routing_keys(replies[-1]):
        reading.in_progress[queue_of(exchange, routing_key, bindings)] += 1.0
    pidbox = settings.pidbox_exchange
    workers = worker_names((queue for _, queue in bindings.get(pidbox, ())), pidbox)
    reading.workers["online"] = float(len(workers))
    reading.has_workers = True
    return workers


class CeleryInspector:
    """Per-task totals from the workers themselves (`inspect().stats()`), imported lazily.

    Celery's remote control broadcasts a request and waits for replies: the wait is bounded by
    the scrape deadline and ends early once every known worker has answered.
    """

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self._app: Any = None

    def app(self) -> Any:
        if self._app is None:
            self._app = celery_app(self.settings, "afirgen_exporter_inspect")
        return self._app

    def read(self, expected_workers: int | None, wait: float, reading: QueueReading) -> None:
        if expected_workers == 0:
            reading.has_processed = True
            return
        inspector = self.app().control.inspect(timeout=wait, limit=expected_workers)
        replies = inspector.stats() or {}
        for stats in replies.values():
            for task, count in (stats.get("total") or {}).items():
                reading.processed[(str(task) or ANY_TYPE, "accepted")] += float(count)
        reading.has_processed = True

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None
