"""The cyclic garbage collector paused while scrapes run, within a bound."""

from __future__ import annotations

import gc
import math
import threading
import time


class GCPause:
    """The cyclic garbage collector paused while any scrape is in progress (nestable, any
    thread).

    A scrape allocates tens of thousands of samples, label dicts and strings that live until
    its body is written and are then freed by reference counting, not by the collector. With
    the collector on, its young-generation passes keep walking them and promote them to the
    older generations, whose passes then walk them again: measured, about a sixth of a Redis
    scrape's CPU. Paused, the first pass after the scrape finds them gone. Scrapes that
    overlap without a gap (many probes, a wedged source holding each scrape to its deadline)
    would keep it paused for good, in an embedding app too: once a pause has lasted
    `max_seconds`, the next scrape to start or end runs a full collection itself. A process
    that turned the collector off keeps it off.
    """

    def __init__(self, max_seconds: float = 1.0) -> None:
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._depth = 0
        self._resume = False
        self._since = 0.0

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._resume = gc.isenabled()
                self._since = time.monotonic()
                gc.disable()
            self._depth += 1
            overdue = self._overdue()
        if overdue:
            self._collect()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                if self._resume:
                    gc.enable()
                return
            overdue = self._overdue()
        if overdue:
            self._collect()

    def _overdue(self) -> bool:
        """Paused for `max_seconds` by overlapping scrapes (the lock is held): one collection,
        and no other scrape starts one meanwhile."""
        if not self._resume or time.monotonic() - self._since < self.max_seconds:
            return False
        self._since = math.inf
        return True

    def _collect(self) -> None:
        gc.collect()
        with self._lock:
            self._since = time.monotonic()  # the next one a whole max_seconds after this one


#: Shared by every engine of the process (the collector is process-wide).
SCRAPE_GC_PAUSE = GCPause()
