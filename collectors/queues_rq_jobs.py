"""RQ job outcomes counted from the registries, so they survive the workers that ran them.

A worker's `successful_job_count` leaves with the worker (a burst worker exits, a deploy
restarts them all), so a total summed over live workers goes down. Instead each scrape reads
the members of every queue's `rq:finished:NAME` and `rq:failed:NAME` registries (live ones:
score, the expiry time, at or after now) and counts the job ids it had not seen there at the
previous scrape. What is remembered is exactly the previous scrape's members, so memory is
bounded by the registries' own size (and by `MEMBER_LIMIT` per registry). The run time of each
newly counted job is `ended_at - started_at` of its `rq:job:ID` hash, its queue wait
`started_at - enqueued_at` (of its last run, for a job that was retried).

The first read of a registry is the baseline: jobs that finished before the exporter watched are
not counted (a restarted exporter starts at 0 rather than re-counting the registries, which
Prometheus would add up as new work after the reset).

What this misses: jobs run with `result_ttl=0` (RQ puts them in no registry), and jobs whose
registry entry expired between two scrapes (`result_ttl`, default 500 s, shorter than the scrape
interval). More than `MEMBER_LIMIT` jobs finishing in one registry between two scrapes: the
newest `MEMBER_LIMIT` entries (highest expiry) are the ones compared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from collectors.base import ScrapeContext
from collectors.queues_model import ANY_TYPE, QueueReading
from collectors.queues_outcomes import Outcomes, OutcomeTracker
from collectors.queues_redis_io import Command, read_many, text

JOB_PREFIX = "rq:job:"
#: (registry key prefix, the status its new members are counted as)
REGISTRIES = (("rq:finished:", "success"), ("rq:failed:", "failure"))
STATUSES = tuple(status for _, status in REGISTRIES)
#: Members compared per registry and scrape (the newest by expiry time).
MEMBER_LIMIT = 10_000
TIMES = ("enqueued_at", "started_at", "ended_at")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class RqJobTracker(OutcomeTracker):
    """Counts newly finished and failed jobs per registry; reads their run time."""

    def __init__(self, outcomes: Outcomes, redis: Callable[[Any], Any]) -> None:
        super().__init__(outcomes)
        outcomes.label(ANY_TYPE)  # served at 0 from the first scrape, before any job ends
        self.redis = redis  # gets the Redis client from a collector's clients
        #: registry key -> its members at the last committed read
        self._seen: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self._started = self._committed = 0

    def read(self, clients: Any, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        queues = sorted({queue for queue, _ in reading.registry})
        keys = [(prefix + queue, status) for queue in queues for prefix, status in REGISTRIES]
        client = self.redis(clients)
        with self._lock:
            self._started += 1
            run = self._started
        commands: list[Command] = [
            ("ZREVRANGEBYSCORE", key, "+inf", now, "LIMIT", 0, MEMBER_LIMIT) for key, _ in keys
        ]
        new = self._commit(run, keys, read_many(client, commands, ctx.deadline))
        for _, status in new:
            self.outcomes.count(ANY_TYPE, status)
        commands = [("HMGET", JOB_PREFIX + job, *TIMES) for job, _ in new]
        for enqueued, started, ended in read_many(client, commands, ctx.deadline):
            seconds = between(started, ended)
            if seconds is not None:
                self.outcomes.observe_duration(ANY_TYPE, seconds)
            seconds = between(enqueued, started)
            if seconds is not None:
                self.outcomes.observe_wait(ANY_TYPE, seconds)
        self.outcomes.fill(reading, ctx)

    def _commit(
        self, run: int, keys: Sequence[tuple[str, str]], replies: Sequence[Any]
    ) -> list[tuple[str, str]]:
        """(job id, status) of the members not seen before; remembers these members. A read
        older than the last one committed (an abandoned run answering late) counts nothing."""
        with self._lock:
            if run < self._committed:
                return []
            self._committed = run
            seen: dict[str, frozenset[str]] = {}
            new: list[tuple[str, str]] = []
            for (key, status), members in zip(keys, replies, strict=True):
                current = seen[key] = frozenset(text(m) for m in members)
                previous = self._seen.get(key)
                if previous is not None:  # else this read is the baseline
                    new.extend((job, status) for job in sorted(current - previous))
            self._seen = seen  # queues no longer read are forgotten
            return new


def parse_time(value: bytes | str | None) -> float | None:
    """One of RQ's timestamps (`enqueued_at`, `started_at`...) as Unix time; None when absent
    or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.strptime(text(value), TIME_FORMAT)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


def between(start: bytes | None, end_: bytes | None) -> float | None:
    """Seconds from one job-hash time to another (`started_at` to `ended_at`: run time;
    `enqueued_at` to `started_at`: queue wait); None when either is missing or unreadable."""
    begin, end = parse_time(start), parse_time(end_)
    if begin is None or end is None:
        return None
    return max(0.0, end - begin)
