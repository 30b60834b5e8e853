"""CPU per Celery event: the exporter's handler beside Celery's own event state, in one run.

    python -m benchmarks.task_queue_events     (or: python benchmarks/task_queue_events.py)

Feeds the same stream of events, as a worker started with `-E` and a producer with
`task_send_sent_event` send them (per task: sent, received, started, succeeded or failed; a
heartbeat per 50 tasks), to

- ours: `CeleryEvents.on_event` (counts, run time and queue wait histograms with native buckets),
- the usual way (celery-exporter, flower): `celery.events.state.State().event(...)`, then the
  task's name looked up in the state and prometheus_client `Counter` / `Histogram` updated,

in interleaved rounds, and prints microseconds of CPU per event (process time, median of the
rounds) and the ratio. No broker: this measures the handling, not the delivery.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] == str(ROOT / "benchmarks"):
    sys.path[0] = str(ROOT)
else:
    sys.path.insert(0, str(ROOT))

from collectors.queues_celery_events import AppSettings, CeleryEvents  # noqa: E402
from collectors.queues_outcomes import STATUSES, Outcomes  # noqa: E402
from collectors.task_queue import DURATION, QUEUE_WAIT  # noqa: E402

TASKS, ROUNDS = 20_000, 5
NAMES = [f"app.tasks.job_{i}" for i in range(20)]


def stream(tasks: int) -> Iterator[dict[str, Any]]:
    """Events with the fields Celery's receiver hands on (it adds `local_received` and a
    `clock` to every event it decodes)."""
    for event in raw_stream(tasks):
        event.setdefault("hostname", "producer@h")
        event.setdefault("clock", 0)
        event["local_received"] = event["timestamp"]
        yield event


def raw_stream(tasks: int) -> Iterator[dict[str, Any]]:
    now = time.time()
    for i in range(tasks):
        uuid = f"{i:08x}-0000-4000-8000-000000000000"
        name = NAMES[i % len(NAMES)]
        at = now + i * 0.01
        yield {"type": "task-sent", "uuid": uuid, "name": name, "timestamp": at, "clock": 2 * i}
        yield {
            "type": "task-received", "uuid": uuid, "name": name, "timestamp": at + 0.002,
            "hostname": "w1@h", "clock": 2 * i + 1, "args": "()", "kwargs": "{}", "retries": 0,
        }  # fmt: skip
        yield {"type": "task-started", "uuid": uuid, "timestamp": at + 0.003, "hostname": "w1@h"}
        if i % 10:
            yield {
                "type": "task-succeeded", "uuid": uuid, "timestamp": at + 0.008,
                "hostname": "w1@h", "runtime": 0.005, "result": "'ok'",
            }  # fmt: skip
        else:
            yield {
                "type": "task-failed", "uuid": uuid, "timestamp": at + 0.008,
                "hostname": "w1@h", "exception": "RuntimeError()", "traceback": "...",
            }  # fmt: skip
        if i % 50 == 0:
            yield {"type": "worker-heartbeat", "hostname": "w1@h", "freq": 2.0, "timestamp": at}


def ours() -> Callable[[dict[str, Any]], None]:
    settings = AppSettings("redis://127.0.0.1:1/0", {}, "celery", "celeryev", 1.0)
    tracker = CeleryEvents(Outcomes("b", 50, DURATION, QUEUE_WAIT, STATUSES), settings, ())
    return tracker.on_event


def celery_state() -> Callable[[dict[str, Any]], None]:
    from celery.events.state import State
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    state = State()
    counts = Counter("tasks", "T.", ["name", "state"], registry=registry)
    runtime = Histogram("runtime_seconds", "R.", ["name"], registry=registry)
    outcomes = {"task-succeeded": "SUCCESS", "task-failed": "FAILURE"}

    def handle(event: dict[str, Any]) -> None:
        state.event(event)
        kind = event["type"]
        if kind in outcomes:
            task = state.tasks.get(event["uuid"])
            name = task.name if task is not None else "unknown"
            counts.labels(name, outcomes[kind]).inc()
            if kind == "task-succeeded":
                runtime.labels(name).observe(event["runtime"])

    return handle


def cpu_per_event(make: Callable[[], Callable[[dict[str, Any]], None]]) -> float:
    events = [dict(e) for e in stream(TASKS)]  # fresh dicts: Celery's state keeps them
    handle = make()
    started = time.process_time()
    for event in events:
        handle(event)
    return (time.process_time() - started) / len(events) * 1e6


def main() -> None:
    sides = {"ours": ours, "celery State": celery_state}
    figures: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(ROUNDS):
        for name, make in sides.items():
            figures[name].append(cpu_per_event(make))
    print(f"{TASKS} tasks, {sum(1 for _ in stream(TASKS))} events; {ROUNDS} interleaved rounds\n")
    print(f"{'side':<14} {'us/event (median)':>18} {'min':>8} {'max':>8}")
    for name, values in figures.items():
        print(
            f"{name:<14} {statistics.median(values):>18.2f} {min(values):>8.2f} {max(values):>8.2f}"
        )
    ratio = statistics.median(figures["ours"]) / statistics.median(figures["celery State"])
    print(f"\nratio ours/celery State: {ratio:.2f}x")


if __name__ == "__main__":
    main()
