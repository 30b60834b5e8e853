"""RabbitMQ queues (plain, or Celery's on an AMQP broker) by passive declare, through kombu.

A passive `queue.declare` returns the ready messages (not the unacknowledged ones) and the
consumers of an existing queue. For a queue that does not exist the broker closes the channel
(404 NOT_FOUND), so every queue gets a fresh channel and a missing one is reported as missing
while the others are still read. One connection per scrape: its connect, read and write
timeouts are what is left of the scrape deadline, and no idle connection has to keep its
heartbeats alive between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from collectors.base import Deadline, ScrapeContext
from collectors.queues_model import NO_PRIORITY, QueueReading
from collectors.queues_target import Clients, QueueTarget

AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
NEEDS_QUEUES = "queues: required for RabbitMQ (queues cannot be discovered by AMQP)"


@dataclass(frozen=True, kw_only=True)
class RabbitMqTarget(QueueTarget):
    """`kind: rabbitmq`: queues read by passive declare."""

    kind: Literal["rabbitmq"] = field(default="rabbitmq", init=False)
    queues: tuple[str, ...] = ()

    url_schemes: ClassVar[frozenset[str]] = AMQP_SCHEMES

    def problems(self) -> Iterator[str]:
        yield from super().problems()
        if not self.queues:
            yield NEEDS_QUEUES

    def read(self, clients: Clients, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        read_rabbitmq(self.url, self.secret, self.queues, ctx.deadline, reading)


def connect(url: str, password: str | None, deadline: Deadline) -> Any:
    from kombu import connection as kombu_connection

    timeout = deadline.timeout()
    factory: Any = kombu_connection.Connection
    connection = factory(
        url,
        password=password or None,
        connect_timeout=timeout,
        heartbeat=0,
        transport_options={"read_timeout": timeout, "write_timeout": timeout},
    )
    # one attempt: kombu's connect() would retry after 2 s, longer than many scrape budgets
    connection.ensure_connection(
        max_retries=0, interval_start=0, interval_step=0, reraise_as_library_errors=False
    )
    return connection


def declare_passive(connection: Any, queue: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of `queue`, or None when the broker says it does not exist."""
    from amqp.exceptions import NotFound

    channel = connection.channel()
    try:
        _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
    except NotFound:
        return None  # the broker closed this channel; the connection stays usable
    try:
        channel.close()
    except Exception:  # noqa: BLE001 - a channel that fails to close is dropped with the connection
        pass
    return int(messages), int(consumers)


def read_rabbitmq(
    url: str, password: str | None, queues: Sequence[str], deadline: Deadline, reading: QueueReading
) -> None:
    connection = connect(url, password, deadline)
    try:
        for queue in queues:
            found = declare_passive(connection, queue)
            reading.exists[queue] = 0.0 if found is None else 1.0
            if found is None:
                continue  # reported missing: no depth is invented for it
            messages, consumers = found
            reading.queued[(queue, NO_PRIORITY)] += float(messages)
            reading.consumers[queue] = float(consumers)
    finally:
        connection.release()
