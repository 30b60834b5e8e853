"""A thread pool whose workers never hold the process up at exit.

`concurrent.futures.ThreadPoolExecutor` joins every worker when the interpreter exits, so one
collection wedged in a read (a source that stopped answering) keeps a stopped exporter alive
until that read gives up, past any grace period. These workers are daemon threads: shutdown
closes what it can in bounded time, and a thread still stuck in I/O simply ends with the
process. Otherwise the pool behaves like ThreadPoolExecutor: threads start on demand up to
`limit` and idle ones are reused.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class WorkerPool(Executor):
    """At most `limit` daemon threads named `name-N`, started when no idle one is waiting."""

    def __init__(self, limit: int, name: str) -> None:
        if limit < 1:
            raise ValueError("a pool needs at least one thread")
        self.limit = limit
        self.name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError(f"{self.name}: cannot schedule new work after shutdown")
            self._work.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.limit:
                thread = threading.Thread(
                    target=self._serve, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - handed to the future's owner
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                    del result  # the scrape's families must not outlive it in this frame
            del item, future, fn, args, kwargs  # drop references before waiting again
            self._idle.release()

    def threads(self) -> int:
        """Threads started so far (each lives until shutdown, or is stuck in a call)."""
        return len(self._threads)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work and let the threads exit once idle.

        `wait` joins them, so a thread stuck in a call holds it up: the engine never waits.
        """
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()


def daemon_call(fn: Callable[[], T], name: str) -> Future[T]:
    """Run `fn` once in its own daemon thread; the future says when (and whether) it returned."""
    future: Future[T] = Future()

    def call() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            future.set_exception(exc)

    threading.Thread(target=call, name=name, daemon=True).start()
    return future
