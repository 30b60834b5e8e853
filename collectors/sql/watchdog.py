"""A client-side deadline for database connections: interrupt their I/O when time is up.

psycopg has no read timeout, and a server-side limit cannot fire when the network is gone:
a connection silently dropped keeps a `recv()` waiting until TCP keepalive gives up (about
2 h). A `Guard` arms one alarm per checked-out connection; at the deadline the alarm calls
the dialect's interrupter (a `shutdown()` of the connection's socket through a duplicate of
its descriptor, or SQLite's `interrupt()`), the blocked call fails at once, and SQLAlchemy
invalidates the connection, which frees its pool slot.

One daemon thread serves every alarm of the process, so the thread count stays flat however
many scrapes time out. A cancelled alarm lets go of its action at once (the guard, and with
it the connection's duplicate socket), and the heap drops cancelled entries when they are
most of it: otherwise every checkout of the last (deadline + grace) seconds stays held, which
at a high scrape rate is hundreds of guards.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable


class Alarm:
    __slots__ = ("at", "action", "cancelled")

    def __init__(self, at: float, action: Callable[[], None]) -> None:
        self.at = at
        self.action = action
        self.cancelled = False


def _nothing() -> None:
    """What a cancelled alarm runs, so it holds no reference to its guard."""


#: Cancelled entries the heap may carry before it is rebuilt without them (when they are also
#: more than half of it): rebuilding costs one pass, so it happens at most every this many
#: cancels
COMPACT_AFTER = 64


class Watchdog:
    """Runs actions at points on the monotonic clock, from one thread started on first use."""

    def __init__(self) -> None:
        self._reset()
        # a forked worker (gunicorn --preload, multiprocess mode) has no watchdog thread
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._cancelled = 0  # cancelled alarms still in the heap
        self._thread: threading.Thread | None = None

    def arm(self, at: float, action: Callable[[], None]) -> Alarm:
        alarm = Alarm(at, action)
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._order), alarm))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sql-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0][2] is alarm:  # earlier than what the thread waits for
                self._cond.notify()
        return alarm

    def cancel(self, alarm: Alarm) -> None:
        with self._cond:
            if alarm.cancelled:
                return
            alarm.cancelled = True  # dropped from the heap when its time comes, or below
            alarm.action = _nothing
            self._cancelled += 1
            if self._cancelled > COMPACT_AFTER and 2 * self._cancelled > len(self._heap):
                # only cancelled entries go: the head can only move later, and the thread
                # waking early for one just waits again
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def pending(self) -> int:
        """Alarms the heap holds, cancelled ones not yet dropped included."""
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                _, _, alarm = heapq.heappop(self._heap)
                if alarm.cancelled:
                    self._cancelled -= 1
                    continue
                alarm.cancelled = True
                action, alarm.action = alarm.action, _nothing
            try:
                action()
            except Exception:  # noqa: BLE001 - an interrupt that fails has nothing to stop
                pass


WATCHDOG = Watchdog()


class Guard:
    """Interrupts one connection's I/O `grace` seconds after its deadline (or at `fire()`),
    once, unless closed first."""

    def __init__(
        self,
        deadline_at: float,
        grace: float,
        interrupt: Callable[[], None],
        release: Callable[[], None],
    ) -> None:
        self.deadline_at = deadline_at
        self.fired = False
        self._interrupt = interrupt
        self._release = release
        self._lock = threading.Lock()  # held only around interrupt/release, never during I/O
        self._closed = False
        self._alarm = WATCHDOG.arm(deadline_at + grace, self.fire)

    def fire(self) -> None:
        with self._lock:
            if self._closed or self.fired:
                return
            self.fired = True
            self._interrupt()

    def close(self) -> None:
        WATCHDOG.cancel(self._alarm)
        with self._lock:
            if not self._closed:
                self._closed = True
                self._release()


def socket_interrupter(fd: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """Shut a connection's socket down from another thread, through our own duplicate of its
    descriptor: a blocked read returns at once, and a descriptor number reused after the
    driver closed its own can never be hit."""
    duplicate = socket.socket(fileno=socket.dup(fd))

    def interrupt() -> None:
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the peer or the driver

    return interrupt, duplicate.close
