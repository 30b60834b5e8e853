"""Plain Redis lists and sorted sets used as queues, with a priority mapping.

A list is one (queue, priority); a sorted set is either one (queue, priority) or, with
`priorities`, split by score ranges (`ZCOUNT key min max` per priority). Where a sorted set's
scores are enqueue times (Unix seconds), the oldest waiting task's age is `now - lowest score`.
A key that does not exist reads 0.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from collectors.base import Deadline, ScrapeContext
from collectors.queues_model import NO_PRIORITY, QueueReading
from collectors.queues_redis_io import Command, RedisBroker, read_many
from collectors.queues_target import Clients, check_not_empty


def check_score_ranges(value: Mapping[str, tuple[float, ...]]) -> Mapping[str, tuple[float, ...]]:
    for name, bounds in value.items():
        if len(bounds) != 2 or bounds[0] > bounds[1]:
            raise ValueError(f"{name}: expected [min, max] with min <= max")
    return value


@dataclass(frozen=True)
class RedisKey:
    """One Redis key holding waiting tasks."""

    key: str
    #: Queue label (default: the key).
    queue: str | None = None
    type: Literal["list", "zset"] = "list"
    #: Priority label for the whole key (lists, or sorted sets without `priorities`).
    priority: str = NO_PRIORITY
    #: Sorted sets only: priority label -> [min, max] score range (inclusive).
    priorities: Mapping[str, tuple[float, ...]] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"check": check_score_ranges},
    )
    #: Sorted sets only: scores are enqueue times (Unix seconds), so the lowest gives the age.
    score_is_enqueue_time: bool = False

    def __post_init__(self) -> None:
        if self.type == "list" and (self.priorities or self.score_is_enqueue_time):
            raise ValueError(
                f"key {self.key!r}: priorities and score_is_enqueue_time need type: zset"
            )
        if self.priorities and self.score_is_enqueue_time:
            raise ValueError(
                f"key {self.key!r}: scores are either priorities or enqueue times, not both"
            )

    @property
    def queue_name(self) -> str:
        return self.queue or self.key


@dataclass(frozen=True, kw_only=True)
class RedisKeysTarget(RedisBroker):
    """`kind: redis`: lists and sorted sets the application uses as queues."""

    kind: Literal["redis"] = field(default="redis", init=False)
    keys: tuple[RedisKey, ...] = field(metadata={"check": check_not_empty})

    def read(self, clients: Clients, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        read_redis_keys(self.redis(clients), self.keys, ctx.deadline, now, reading)


def key_commands(spec: RedisKey) -> list[tuple[str, Command]]:
    """(priority label or '' for the age, command) for one key."""
    if spec.type == "list":
        return [(spec.priority, ("LLEN", spec.key))]
    if spec.priorities:
        return [
            (name, ("ZCOUNT", spec.key, low, high)) for name, (low, high) in spec.priorities.items()
        ]
    commands: list[tuple[str, Command]] = [(spec.priority, ("ZCARD", spec.key))]
    if spec.score_is_enqueue_time:
        commands.append(("", ("ZRANGE", spec.key, 0, 0, "WITHSCORES")))
    return commands


def read_redis_keys(
    client: Any, keys: Sequence[RedisKey], deadline: Deadline, now: float, reading: QueueReading
) -> None:
    planned = [(spec, label, cmd) for spec in keys for label, cmd in key_commands(spec)]
    replies = read_many(client, [cmd for _, _, cmd in planned], deadline)
    for (spec, label, _), reply in zip(planned, replies, strict=True):
        queue = spec.queue_name
        if label:
            reading.queued[(queue, label)] += float(reply)
        else:
            score = lowest_score(reply)
            if score is not None:
                age = max(0.0, now - score)
                reading.oldest_age[queue] = max(age, reading.oldest_age.get(queue, 0.0))


def lowest_score(reply: Sequence[Any]) -> float | None:
    """The score of `ZRANGE key 0 0 WITHSCORES`: `[m, s]` in RESP2, `[[m, s]]` in RESP3."""
    if not reply:
        return None
    head = reply[0]
    return float(head[1] if isinstance(head, list | tuple) else reply[1])
