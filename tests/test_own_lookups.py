"""The ledger of the exporter's own lookups: what it records, and how INFO and the task-queue
reads on one server are ordered by it (threads in this process; no server is needed)."""

from __future__ import annotations

import threading
import time

from collectors.own_lookups import GATE_WAIT_SECONDS, Ledger


def test_a_batch_waits_for_a_running_info_and_lands_after_it():
    ledger = Ledger()
    started, recorded = threading.Event(), threading.Event()

    def batch() -> None:
        started.set()
        with ledger.batch("s:1", wait=5) as own:
            own.add(2, 3)
        recorded.set()

    with ledger.bracket("s:1", wait=5) as before:
        thread = threading.Thread(target=batch)
        thread.start()
        started.wait(5)
        assert not recorded.wait(0.2)  # held back while INFO runs
        assert (before.hits, before.misses, before.ordered) == (0, 0, True)
    thread.join(5)
    assert recorded.is_set()
    after = ledger.totals("s:1")
    assert (after.hits, after.misses) == (2, 3)
    assert (ledger.totals("s:2").hits, ledger.totals("s:2").misses) == (0, 0)  # per server


class BatchInFlight:
    """A task-queue batch on its own thread, held in flight until `release()`."""

    def __init__(self, ledger: Ledger, hits: int, misses: int) -> None:
        self._started, self._released = threading.Event(), threading.Event()

        def batch() -> None:
            with ledger.batch("s:1", wait=5) as own:
                self._started.set()
                self._released.wait(10)
                own.add(hits, misses)

        self._thread = threading.Thread(target=batch)
        self._thread.start()
        assert self._started.wait(5)

    def release(self) -> None:
        self._released.set()

    def join(self) -> None:
        self.release()
        self._thread.join(5)


def test_info_waits_for_a_batch_in_flight_and_counts_it():
    ledger = Ledger()
    batch = BatchInFlight(ledger, 1, 4)
    threading.Timer(0.1, batch.release).start()
    with ledger.bracket("s:1", wait=5) as reading:
        assert (reading.hits, reading.misses, reading.ordered) == (1, 4, True)
    batch.join()


def test_the_waits_are_bounded_and_a_late_batch_is_flagged():
    ledger = Ledger()
    batch = BatchInFlight(ledger, 0, 7)
    started = time.monotonic()
    with ledger.bracket("s:1", wait=30) as reading:  # capped at GATE_WAIT_SECONDS
        waited = time.monotonic() - started
        assert (reading.misses, reading.ordered) == (0, False)
    assert GATE_WAIT_SECONDS <= waited < GATE_WAIT_SECONDS + 2
    batch.join()
    assert ledger.totals("s:1").misses == 7  # counted, in the next interval
