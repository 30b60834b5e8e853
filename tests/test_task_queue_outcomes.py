"""The pure parts of the outcome trackers: the stable type budget, the store shared across
reloads, and Celery event sequences as workers send them (field names as in Celery 5.7's
worker/request.py and events/dispatcher.py)."""

from __future__ import annotations

from collectors.base import Deadline, ScrapeContext
from collectors.queues_celery_events import AppSettings, CeleryEvents, eta_of
from collectors.queues_model import QueueReading
from collectors.queues_outcomes import OTHER, STATUSES, Outcomes, OutcomeStore, OutcomeTracker
from collectors.task_queue import DURATION, QUEUE_WAIT


def outcomes(limit: int = 2) -> Outcomes:
    return Outcomes("b", limit, DURATION, QUEUE_WAIT)


def filled(tally: Outcomes) -> tuple[dict[tuple[str, str], float], ScrapeContext]:
    reading = QueueReading()
    ctx = ScrapeContext(Deadline.after(5))
    tally.fill(reading, ctx)
    return dict(reading.processed), ctx


def test_types_past_the_budget_stay_under_other_for_good():
    tally = outcomes(limit=2)
    tally.count("a", "success", 1)
    tally.count("b", "success", 1)
    for _ in range(5):
        tally.count("c", "success")  # the busiest, but seen third: other
    tally.count("d", "failure")
    counts, ctx = filled(tally)
    assert counts[("a", "success")] == 1 and counts[("b", "success")] == 1
    assert counts[(OTHER, "success")] == 5 and counts[(OTHER, "failure")] == 1
    assert {t for t, _ in counts} == {"a", "b", OTHER}
    assert ctx.series_dropped == 2  # c and d, each once
    tally.count("c", "success")
    again, ctx = filled(tally)
    assert again[(OTHER, "success")] == 6 and ctx.series_dropped == 2
    # every status of a type is there from its first sighting
    assert {s for t, s in counts if t == "a"} == set(STATUSES)


class Probe(OutcomeTracker):
    closed = 0

    def read(self, clients, ctx, reading, now) -> None:
        pass

    def close(self) -> None:
        self.closed += 1


def test_the_store_keeps_a_tracker_while_any_collector_holds_it():
    store = OutcomeStore()
    made: list[Probe] = []

    def make() -> Probe:
        made.append(Probe(outcomes()))
        return made[-1]

    old = store.acquire("target", make)
    new = store.acquire("target", make)  # a reload builds the new collector first
    assert new is old and len(made) == 1
    store.release("target", old)  # then closes the old one
    assert old.closed == 0
    store.release("target", new)
    assert old.closed == 1
    assert store.acquire("target", make) is not old  # a fresh one after the last release
    assert store.acquire("other", lambda: None) is None


def stats(histogram, task: str) -> tuple[float, float]:
    """(count, sum) of one type's series, read from the family the scrape serves."""
    found = {
        s.name.rsplit("_", 1)[1]: s.value
        for s in histogram.family().samples
        if s.labels.get("type") == task and s.name.endswith(("_count", "_sum"))
    }
    return found["count"], found["sum"]


def events() -> CeleryEvents:
    settings = AppSettings("redis://127.0.0.1:1/0", {}, "celery", "celeryev", 1.0)
    return CeleryEvents(outcomes(limit=5), settings, ())


def test_a_task_sent_received_started_and_succeeded():
    tracker = events()
    for event in (
        {"type": "task-sent", "uuid": "u1", "name": "mail.send", "timestamp": 100.0},
        {"type": "task-received", "uuid": "u1", "name": "mail.send", "timestamp": 101.0},
        {"type": "task-started", "uuid": "u1", "timestamp": 103.5},
        {"type": "task-succeeded", "uuid": "u1", "timestamp": 104.0, "runtime": 0.4},
    ):
        tracker.on_event(event)
    counts, _ = filled(tracker.outcomes)
    assert counts[("mail.send", "success")] == 1
    wait = stats(tracker.outcomes.wait, "mail.send")
    run = stats(tracker.outcomes.duration, "mail.send")
    assert wait == (1, 3.5)  # from task-sent, not task-received
    assert run == (1, 0.4)


def test_failure_retry_reject_and_revoke_are_matched_to_the_name_by_uuid():
    tracker = events()
    sequence = [
        {"type": "task-received", "uuid": "f", "name": "t.fail", "timestamp": 10.0},
        {"type": "task-started", "uuid": "f", "timestamp": 11.0},
        {"type": "task-failed", "uuid": "f", "timestamp": 13.0},
        {"type": "task-rejected", "uuid": "f", "requeue": False},  # after the failure
        {"type": "task-received", "uuid": "r", "name": "t.retry", "timestamp": 20.0},
        {"type": "task-started", "uuid": "r", "timestamp": 20.5},
        {"type": "task-retried", "uuid": "r", "timestamp": 21.0},
        {"type": "task-received", "uuid": "r", "name": "t.retry", "timestamp": 22.0},
        {"type": "task-started", "uuid": "r", "timestamp": 22.25},
        {"type": "task-succeeded", "uuid": "r", "timestamp": 23.0, "runtime": 0.75},
        {"type": "task-revoked", "uuid": "never-seen", "expired": True},
    ]
    for event in sequence:
        tracker.on_event(event)
    counts, _ = filled(tracker.outcomes)
    assert {k: v for k, v in counts.items() if v} == {
        ("t.fail", "failure"): 1,
        ("t.fail", "rejected"): 1,
        ("t.retry", "retry"): 1,
        ("t.retry", "success"): 1,
        ("unknown", "revoked"): 1,
    }
    failed_run = stats(tracker.outcomes.duration, "t.fail")
    assert failed_run == (1, 2.0)  # failed minus started
    waits = stats(tracker.outcomes.wait, "t.retry")
    assert waits == (2, 0.75)  # each run from its own task-received


def test_an_eta_task_waits_from_its_eta():
    tracker = events()
    eta = "2026-01-02T03:04:05.500000+00:00"
    at = eta_of(eta)
    assert at == 1767323045.5
    tracker.on_event(
        {"type": "task-received", "uuid": "e", "name": "x", "timestamp": at - 60, "eta": eta}
    )
    tracker.on_event({"type": "task-started", "uuid": "e", "timestamp": at + 0.25})
    wait = stats(tracker.outcomes.wait, "x")
    assert wait == (1, 0.25)
    assert eta_of("2026-01-02T03:04:05") is None  # naive: no time zone, not guessed


def test_workers_online_by_heartbeat_only_once_the_receiver_heard_a_whole_window():
    tracker = events()
    tracker.on_event({"type": "worker-heartbeat", "hostname": "w1@h", "freq": 1.0})
    tracker.on_event({"type": "worker-online", "hostname": "w2@h", "freq": 1.0})
    assert tracker.online(at=0.0) is None  # not connected
    tracker.connected_since = 0.0
    (w1_seen, _) = tracker._workers["w1@h"]  # monotonic time of its heartbeat
    assert tracker.online(at=1.5) is None  # connected 1.5 s: a 1 s worker may not have beaten
    tracker.connected_since = w1_seen - 10
    assert tracker.online(at=w1_seen + 1.5) == 2
    tracker.on_event({"type": "worker-offline", "hostname": "w2@h"})
    assert tracker.online(at=w1_seen + 1.5) == 1
    assert tracker.online(at=w1_seen + 2.5) == 0  # two intervals without a heartbeat: gone
