"""RQ, read from its Redis keys (no RQ import): queues, job registries, workers.

- `rq:queues`: set of `rq:queue:NAME` keys; each a list of job ids, the next to run first.
- `rq:wip|finished|failed|canceled:NAME`: sorted sets scored by expiry time (-1 ttl is
  `+inf`), so live entries are `ZCOUNT key now +inf`; `rq:deferred:NAME` (scored by creation
  time in RQ 3) and `rq:scheduled:NAME` (scored by run time) count whole (`ZCARD`).
- `rq:workers`: set of `rq:worker:NAME` hashes with `state`. A worker whose hash expired (it
  died without cleaning up) is not counted.
- `rq:job:ID` hashes with `enqueued_at` (`%Y-%m-%dT%H:%M:%S.%fZ`, UTC).

Job outcomes and run times are counted by `queues_rq_jobs.RqJobTracker` from the finished and
failed registries (worker records leave with their workers: a sum over them goes backwards).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from collectors.base import Deadline, ScrapeContext
from collectors.queues_model import NO_PRIORITY, QueueReading
from collectors.queues_outcomes import Outcomes
from collectors.queues_redis_io import Command, RedisBroker, read_many, text
from collectors.queues_rq_jobs import JOB_PREFIX, STATUSES, RqJobTracker, parse_time
from collectors.queues_target import Clients

QUEUES_KEY = "rq:queues"
QUEUE_PREFIX = "rq:queue:"
WORKERS_KEY = "rq:workers"
#: registry label -> (key prefix, True if scored by expiry time so only live entries count)
REGISTRIES: dict[str, tuple[str, bool]] = {
    "started": ("rq:wip:", True),
    "finished": ("rq:finished:", True),
    "failed": ("rq:failed:", True),
    "canceled": ("rq:canceled:", True),
    "deferred": ("rq:deferred:", False),
    "scheduled": ("rq:scheduled:", False),
}
ALWAYS_REPORTED_STATES = ("idle", "busy")


@dataclass(frozen=True, kw_only=True)
class RqTarget(RedisBroker):
    """`kind: rq`."""

    kind: Literal["rq"] = field(default="rq", init=False)
    #: Queues to read; empty: discovered from `rq:queues`.
    queues: tuple[str, ...] = ()

    def outcome_tracker(self, outcomes: Callable[[tuple[str, ...]], Outcomes]) -> RqJobTracker:
        return RqJobTracker(outcomes(STATUSES), self.redis)

    def read(self, clients: Clients, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        read_rq(self.redis(clients), self.queues, ctx.deadline, now, reading)


def discover_queues(client: Any, deadline: Deadline) -> list[str]:
    (members,) = read_many(client, [("SMEMBERS", QUEUES_KEY)], deadline)
    names = (text(m) for m in members)
    return sorted(n[len(QUEUE_PREFIX) :] for n in names if n.startswith(QUEUE_PREFIX))


def queue_commands(queue: str, now: float) -> list[Command]:
    """Depth, head job id and every registry count of one queue."""
    commands: list[Command] = [("LLEN", QUEUE_PREFIX + queue), ("LINDEX", QUEUE_PREFIX + queue, 0)]
    for prefix, by_expiry in REGISTRIES.values():
        if by_expiry:
            commands.append(("ZCOUNT", prefix + queue, now, "+inf"))
        else:
            commands.append(("ZCARD", prefix + queue))
    return commands


def read_rq(
    client: Any, queues: Sequence[str], deadline: Deadline, now: float, reading: QueueReading
) -> None:
    """Fill depths, registries, in-progress, oldest waiting age and workers by state."""
    names = list(queues) or discover_queues(client, deadline)
    per_queue = 2 + len(REGISTRIES)
    commands = [c for queue in names for c in queue_commands(queue, now)]
    commands.append(("SMEMBERS", WORKERS_KEY))
    replies = read_many(client, commands, deadline)
    heads: dict[str, str] = {}
    for index, queue in enumerate(names):
        depth, head, *registry_counts = replies[index * per_queue : (index + 1) * per_queue]
        reading.queued[(queue, NO_PRIORITY)] += float(depth)
        for registry, count in zip(REGISTRIES, registry_counts, strict=True):
            reading.registry[(queue, registry)] += float(count)
        reading.in_progress[queue] += float(registry_counts[0])
        if head:
            heads[queue] = text(head)
    worker_keys = sorted(text(k) for k in replies[-1])
    second: list[Command] = [("HGET", JOB_PREFIX + job, "enqueued_at") for job in heads.values()]
    second += [("HGET", key, "state") for key in worker_keys]
    more = read_many(client, second, deadline)
    for queue, enqueued in zip(heads, more[: len(heads)], strict=True):
        at = parse_time(enqueued)
        if at is not None:
            reading.oldest_age[queue] = max(0.0, now - at)
    add_workers(more[len(heads) :], reading)


def add_workers(states: Sequence[bytes | None], reading: QueueReading) -> None:
    """Workers by state (`idle` and `busy` always, so "no worker at all" is a 0)."""
    for known in ALWAYS_REPORTED_STATES:
        reading.workers[known] += 0.0
    for state in states:
        if state is None:  # the hash expired: the worker is gone
            continue
        reading.workers[text(state) or "unknown"] += 1.0
    reading.has_workers = True
