"""The collections in flight for each unit: single flight, and abandonment of overrun runs.

- Single flight: a scrape that finds its unit already being collected waits for that run
  instead of starting another, so overlapping scrapes never stack queries on a source.
- A run still going OVERRUN_SECONDS after its deadline is abandoned (by a scrape still waiting
  for it, or the next one to come): later scrapes no longer join it, the collector's
  `abandon()` is called once for it in a worker thread (so it drops the stuck connection), and
  its late result is discarded, never served as fresh. The next scrape starts a fresh run.
- At most `max_abandoned` abandoned runs per unit may still be running; beyond that no new run
  (and no thread) is started for the unit until one of them ends, so a wedged source cannot
  make threads grow without limit. A scrape that finds the quota full waits (within its own
  deadline) for one of them to end and then starts its run.
- A run never decides the outcome of a scrape with a later deadline than its own: a scrape
  that joined a run of a shorter deadline takes its result only if it succeeded; if it failed
  or overran, the scrape starts its own run (after it: never two at once) with the time left.

Threads: all sources share one GIL, so a thread per unit buys overlap of I/O waits only, and
costs a hand-off (a wake-up, a GIL switch, a done callback) per unit. The runs a scrape
starts for the units it names as `chained` (the engine picks quick ones that answered last
time) form a chain: CHAIN_THREADS threads take its runs in the order given, each the next one
when it is done with its last (two: while one waits for its source, the other computes);
every other run gets a thread of its own, started first. A unit of the chain not reached
`spare_after` seconds after the scrape started (a unit before it turned slow or wedged) gets
a thread of its own then, so one stuck source never holds the others past their deadlines.

Runs are `concurrent.futures` futures (not tied to one event loop) and the bookkeeping is
guarded by a lock that is never held across I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from collectors.base import CollectionResult, Deadline, SourceCollector

#: Abandoned runs of one unit that may still be running; while they are, no other starts.
MAX_ABANDONED = 2
#: A run still going this long after its deadline is abandoned. Its I/O timeouts come from
#: the deadline, so a run that is merely slow ends just after it (and is waited for: no
#: second run beside it); only a run stuck past this is a wedged source.
OVERRUN_SECONDS = 0.25
#: Deadlines closer than this count as the same: scrapes with them share a run's failure
#: and a rendered body (Prometheus's own jitter between identical scrapes stays inside).
SAME_DEADLINE_SECONDS = 0.05

#: A chained unit not reached this long after its scrape started gets a thread of its own
#: (the engine asks for more when the chain usually takes longer).
SPARE_AFTER_SECONDS = 0.005

#: Threads that take the runs of one chain in turn
CHAIN_THREADS = 2

K = TypeVar("K", bound=Hashable)


@dataclass(eq=False)
class Run:
    future: Future[CollectionResult]
    deadline: Deadline
    abandoned: bool = False


_Link = tuple[SourceCollector, Deadline, "Future[CollectionResult]"]


class Chain:
    """Runs that a few threads take in turn (`drive`); `spare()` hands each one not yet begun
    to a thread of its own. Whichever takes a link first runs it (never two)."""

    def __init__(self, links: Sequence[_Link], spare_at: float) -> None:
        self._links = deque(links)
        self._lock = threading.Lock()
        self.spare_at = spare_at

    def _take(self) -> _Link | None:
        with self._lock:
            return self._links.popleft() if self._links else None

    def waiting(self) -> bool:
        with self._lock:
            return bool(self._links)

    def drive(self) -> None:
        """Run the next link not taken until none is left (in one of the chain's threads)."""
        while (link := self._take()) is not None:
            _resolve(*link)

    def spare(self, pool: Executor) -> None:
        """Start every link not begun yet in a thread of its own."""
        while (link := self._take()) is not None:
            try:
                pool.submit(_resolve, *link)
            except RuntimeError:  # the engine is closing: nobody waits for it
                link[2].cancel()

    def cancel(self) -> None:
        """The chain's thread never started (the pool shut down): drop what it would run."""
        while (link := self._take()) is not None:
            link[2].cancel()


def _resolve(
    collector: SourceCollector, deadline: Deadline, future: Future[CollectionResult]
) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = collector.run(deadline, report=False)
    except BaseException as exc:  # noqa: BLE001 - handed to the future's owner
        future.set_exception(exc)
    else:
        future.set_result(result)


@dataclass
class Flights(Generic[K]):
    """Runs in flight per unit key, and how many were abandoned (kept across reloads)."""

    pool: Executor
    #: Where `abandon()` is called: a thread of its own, so a slow hook delays no scrape.
    janitor: Executor
    max_abandoned: int = MAX_ABANDONED
    abandoned_total: dict[K, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[K, Run] = {}
        self._abandoned: dict[K, set[Run]] = {}
        self._abandoning: dict[K, Future[None]] = {}
        self._waiting: set[Callable[[], None]] = set()
        self._stopped = False

    def stop_waiting(self) -> None:
        """The process is stopping: every scrape waiting takes what is done now, at once, and
        later ones start nothing (what is still running is left to the close)."""
        with self._lock:
            self._stopped = True
            wakers = list(self._waiting)
        for wake in wakers:
            wake()

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def results(
        self,
        wanted: Sequence[tuple[K, SourceCollector, Deadline]],
        *,
        chained: Collection[int] = (),
        spare_after: float = SPARE_AFTER_SECONDS,
        on_result: Callable[[Future[CollectionResult]], None] | None = None,
    ) -> list[CollectionResult | None]:
        """Each unit's collection by its deadline (None when none answered in time).

        All of one scrape's units are waited for together: the loop wakes once when every run
        is done, or at the next deadline among them, or when an abandoned run ends for a unit
        whose quota was full. A run started for an earlier deadline is joined until it ends or
        is abandoned; unless it succeeded, a fresh run is started with the time left.

        New runs of the units at the indices `chained` form a chain, in the order of
        `wanted` (see the module's docstring), each given its own thread if the chain has not
        reached it `spare_after` seconds from now; the others get a thread each, started first.

        `on_result` is given each run this scrape waits for, as a done callback: it runs in
        the run's thread when the run ends (at once if it already had), so the scrape's own
        work on a result (encoding it) overlaps the runs still waiting for their sources.
        """
        answers: list[CollectionResult | None] = [None] * len(wanted)
        pending: dict[int, Run | None] = {}
        links: list[_Link] = []
        for i, (key, collector, deadline) in enumerate(wanted):
            if i not in chained:
                pending[i] = self._join_or_start(key, collector, deadline)
        for i in sorted(chained):
            key, collector, deadline = wanted[i]
            pending[i] = self._join_or_start(key, collector, deadline, links)
        if on_result is not None:
            for run in pending.values():
                if run is not None:
                    run.future.add_done_callback(on_result)
        chain = self._start_chain(links, time.monotonic() + spare_after)
        while pending:
            waiting = [run.future for run in pending.values() if run and not run.future.done()]
            full = [wanted[i][0] for i, r in pending.items() if r is None]
            blocked = [future for key in full for future in self._stuck(key)]
            until = min(
                min(wanted[i][2].at, run.deadline.at + OVERRUN_SECONDS if run else math.inf)
                for i, run in pending.items()
            )
            if chain is not None:
                if chain.waiting():
                    until = min(until, chain.spare_at)
                else:
                    chain = None
            if (waiting or blocked) and not self._stopped:
                await _done_or_timeout(waiting, blocked, until - time.monotonic(), self._waiting)
            if chain is not None and time.monotonic() >= chain.spare_at:
                chain.spare(self.pool)
                chain = None
            for i, run in list(pending.items()):
                if self._stopped:  # answered with what is done; the rest is left unanswered
                    if run is not None and _answered(run):
                        answers[i] = run.future.result()
                    del pending[i]
                    continue
                key, collector, deadline = wanted[i]
                if run is not None and run.future.cancelled():  # closing: never ran
                    del pending[i]
                    continue
                if run is not None and run.future.done() and not run.abandoned:
                    result = run.future.result()
                    if result.success or not _shorter(run.deadline, deadline) or deadline.expired():
                        answers[i] = result
                        del pending[i]
                        continue
                    run = None  # failed within a shorter deadline than this scrape's: ask again
                elif run is not None and time.monotonic() >= run.deadline.at + OVERRUN_SECONDS:
                    self.abandon(key, collector, run)
                if deadline.expired():
                    del pending[i]
                elif run is None or run.abandoned:
                    pending[i] = run = self._join_or_start(key, collector, deadline)
                    if run is not None and on_result is not None:
                        run.future.add_done_callback(on_result)
        if chain is not None and not self._stopped:  # this scrape is over: nobody spares them
            chain.spare(self.pool)
        return answers

    def _join_or_start(
        self,
        key: K,
        collector: SourceCollector,
        deadline: Deadline,
        links: list[_Link] | None = None,
    ) -> Run | None:
        """The unit's run in flight, or a new one; None while its abandoned quota is full.

        A new run is started in a thread of its own or, when `links` is given, appended to
        that chain (`_start_chain` starts it)."""
        with self._lock:
            if self._stopped:
                return None
            run = self._current.get(key)
            if run is not None and not run.future.done():
                return run
            stuck = self._abandoned.get(key, ())
            if sum(1 for r in stuck if not r.future.done()) >= self.max_abandoned:
                return None
            hook = self._abandoning.pop(key, None)
            if hook is not None and not hook.done():
                # the collector's abandon() returns before its next run starts
                future = self.pool.submit(_run_after, hook, collector, deadline)
            elif links is None:
                future = self.pool.submit(collector.run, deadline, report=False)
            else:
                future = Future()
                links.append((collector, deadline, future))
            run = Run(future, deadline)
            self._current[key] = run
        # outside the lock: a run already done calls back at once, and that takes the lock.
        # The callback names the key, not the run: a future keeps its callbacks, so one that
        # held its run would make a cycle, and the scrape's families would wait for the
        # cyclic collector instead of going with their last reference.
        run.future.add_done_callback(functools.partial(self._finished, key))
        return run

    def _start_chain(self, links: list[_Link], spare_at: float) -> Chain | None:
        """The threads of the scrape's chain (CHAIN_THREADS at most)."""
        if not links:
            return None
        chain = Chain(links, spare_at)
        for _ in range(min(CHAIN_THREADS, len(links))):
            try:
                driver = self.pool.submit(chain.drive)
            except RuntimeError:  # the engine is closing
                chain.cancel()
                return None
            driver.add_done_callback(lambda _: chain.cancel())  # cancelled at shutdown
        return chain

    def _stuck(self, key: K) -> list[Future[CollectionResult]]:
        """The unit's abandoned runs still going (one ending frees a place in its quota)."""
        with self._lock:
            return [r.future for r in self._abandoned.get(key, ()) if not r.future.done()]

    def _finished(self, key: K, future: Future[CollectionResult]) -> None:
        with self._lock:
            current = self._current.get(key)
            if current is not None and current.future is future:
                del self._current[key]
            stuck = self._abandoned.get(key)
            if stuck:  # its late result is dropped with it
                stuck.difference_update([r for r in stuck if r.future is future])

    def abandon(self, key: K, collector: SourceCollector, run: Run) -> None:
        """Stop waiting for `run` (once): it overran its deadline and is still going."""
        with self._lock:
            if run.abandoned or run.future.done():
                return
            run.abandoned = True
            if self._current.get(key) is run:
                del self._current[key]
            self._abandoned.setdefault(key, set()).add(run)
            self.abandoned_total[key] = self.abandoned_total.get(key, 0) + 1
        try:
            hook = self.janitor.submit(_call_abandon, collector)
        except RuntimeError:  # the engine is closing: close() drops the connections instead
            return
        with self._lock:
            self._abandoning[key] = hook

    def stuck(self, key: K) -> int:
        """Abandoned runs of the unit still running."""
        with self._lock:
            return len(self._abandoned.get(key, ()))

    def in_flight(self) -> list[Future[CollectionResult]]:
        """The runs not abandoned (what a graceful close waits for)."""
        with self._lock:
            return [run.future for run in self._current.values()]


def _answered(run: Run) -> bool:
    return run.future.done() and not run.future.cancelled() and not run.abandoned


def _shorter(run: Deadline, scrape: Deadline) -> bool:
    """The run had clearly less time than the scrape (more than a render's sharing window)."""
    return run.at < scrape.at - SAME_DEADLINE_SECONDS


async def _done_or_timeout(
    every: Sequence[Future[CollectionResult]],
    anyone: Sequence[Future[CollectionResult]],
    timeout: float,
    wakers: set[Callable[[], None]],
) -> None:
    """Until all of `every` are done, one of `anyone` is, `timeout` seconds passed, or a
    waker (registered in `wakers` meanwhile; callable from any thread) is called.

    One loop future, one timer and one wake-up of the loop for a whole scrape (not one per
    unit, as asyncio.wait over wrapped futures would cost).
    """
    loop = asyncio.get_running_loop()
    woken = loop.create_future()
    left = [len(every)]
    lock = threading.Lock()

    def wake() -> None:
        if not woken.done():
            woken.set_result(None)

    def from_thread() -> None:
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
            loop.call_soon_threadsafe(wake)

    def one_of_every(_: Future[CollectionResult]) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            from_thread()

    timer = loop.call_later(max(0.0, timeout), wake)
    for future in every:
        future.add_done_callback(one_of_every)
    for future in anyone:
        future.add_done_callback(lambda _: from_thread())
    wakers.add(from_thread)
    try:
        await woken
    finally:
        wakers.discard(from_thread)
        timer.cancel()


def _run_after(
    hook: Future[None], collector: SourceCollector, deadline: Deadline
) -> CollectionResult:
    """`collector.run(deadline)` once its abandon() call has returned (or the deadline passed)."""
    with contextlib.suppress(Exception):
        hook.result(timeout=deadline.remaining())
    return collector.run(deadline, report=False)


def _call_abandon(collector: SourceCollector) -> None:
    try:
        collector.abandon()
    except Exception as exc:  # noqa: BLE001 - a broken hook must not break the janitor
        collector.log_failure("error", exc)
