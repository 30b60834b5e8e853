"""The pure parts of the task-queue collector: parsing broker records and shaping families
under label budgets (no broker needed)."""

from __future__ import annotations

import json

import pytest

from collectors.base import Deadline, ScrapeContext
from collectors.queues_celery import (
    parse_binding,
    queue_of,
    unacked_routing_keys,
    with_password,
    worker_names,
)
from collectors.queues_model import QueueReading
from collectors.queues_outcomes import Outcomes
from collectors.queues_redis_io import pack
from collectors.queues_rq_jobs import parse_time
from collectors.queues_sql import StatusMap, add_rows
from collectors.specs import by_name
from collectors.task_queue import (
    DURATION,
    KINDS,
    QUEUE_WAIT,
    SPECS,
    TaskQueueCollector,
    shape_families,
)
from tests.support import registry_of
from tests.tq_support import target_from

SEP = "\x06\x16"


@pytest.mark.parametrize(
    ("member", "sep", "expected"),
    [
        (f"default{SEP}{SEP}default".encode(), SEP, ("default", "default")),
        (f"{SEP}{SEP}w1@host.celery.pidbox".encode(), SEP, ("", "w1@host.celery.pidbox")),
        ("rk::q", ":", ("rk", "q")),
        ("lonely", SEP, ("", "lonely")),
    ],
)
def test_parse_binding(member, sep, expected):
    assert parse_binding(member, sep) == expected


def test_unacked_records_map_to_queues_through_bindings():
    values = [
        json.dumps([{"body": "..."}, "tasks", "rk.mail"]).encode(),
        json.dumps([{"body": "..."}, "afx", "afx"]).encode(),
        b"not json",
        json.dumps({"unexpected": "shape"}).encode(),
    ]
    keys = unacked_routing_keys(values)
    assert keys == [("tasks", "rk.mail"), ("afx", "afx")]
    bindings = {"tasks": [("rk.mail", "mail_queue")]}
    assert [queue_of(ex, rk, bindings) for ex, rk in keys] == ["mail_queue", "afx"]


def test_worker_names_come_from_pidbox_queues_only():
    queues = ["a@h1.celery.pidbox", "b@h2.celery.pidbox", "a@h1.celery.pidbox", "celeryev.x"]
    assert worker_names(queues) == ["a@h1", "b@h2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"2026-01-02T03:04:05.250000Z", 1767323045.25),
        ("1970-01-01T00:00:10.000000Z", 10.0),
        (b"yesterday", None),
        (None, None),
    ],
)
def test_parse_rq_time(value, expected):
    assert parse_time(value) == expected


def test_sql_rows_sorted_by_status():
    reading = QueueReading()
    rows = [
        {"queue": "a", "status": "queued", "count": 4, "priority": 1, "age_seconds": 30},
        {"queue": "a", "status": "pending", "count": 1, "priority": None, "age_seconds": 70},
        {"queue": "a", "status": "running", "count": 2},
        {"queue": "b", "status": "done", "count": 9, "type": "ocr"},
        {"queue": "b", "status": "failed", "count": 3},
    ]
    add_rows(rows, StatusMap(frozenset({"queued", "pending"}), frozenset({"running"})), reading)
    assert dict(reading.queued) == {("a", "1"): 4, ("a", "none"): 1}
    assert dict(reading.in_progress) == {"a": 2, "b": 0}
    assert dict(reading.processed) == {("ocr", "done"): 9, ("all", "failed"): 3}
    assert reading.oldest_age == {"a": 70}


def shaped(reading: QueueReading, **options):
    target = target_from({"name": "t", "kind": "rq", "url": "redis://127.0.0.1/0", **options})
    ctx = ScrapeContext(Deadline.after(5))
    families = list(shape_families(target, reading, ctx))
    return registry_of(families), ctx


def test_budgets_fold_queues_and_types_into_other_and_keep_totals():
    reading = QueueReading()
    for queue, depth in {"q1": 10, "q2": 7, "q3": 2, "q4": 1}.items():
        reading.queued[(queue, "none")] = depth
        reading.oldest_age[queue] = depth * 10.0
    for task, count in {"send": 50, "resize": 20, "ping": 3, "noop": 1}.items():
        reading.processed[(task, "success")] = count
    reading.has_processed = True
    registry, ctx = shaped(reading, queue_limit=2, type_limit=2)
    value = registry.get_sample_value
    assert (
        value("background_tasks_queued", {"backend": "t", "queue": "other", "priority": "none"})
        == 3
    )
    assert (
        value("background_tasks_queued", {"backend": "t", "queue": "q1", "priority": "none"}) == 10
    )
    # ages fold by the oldest, not by a sum
    assert (
        value("background_tasks_oldest_waiting_age_seconds", {"backend": "t", "queue": "other"})
        == 20
    )
    labels = {"backend": "t", "type": "other", "status": "success"}
    assert value("background_tasks_processed_total", labels) == 4
    assert ctx.series_dropped == 4  # two queues and two types folded


def test_with_password_puts_a_quoted_password_in_the_url():
    assert (
        with_password("redis://127.0.0.1:6379/1", "p@ss/w")
        == "redis://:p%40ss%2Fw@127.0.0.1:6379/1"
    )
    assert with_password("amqp://bob@h:5672/v", "x") == "amqp://bob:x@h:5672/v"
    assert with_password("amqp://bob@h/v", None) == "amqp://bob@h/v"


def test_every_kind_is_named_by_its_type():
    for name, target_type in KINDS.items():
        assert target_type.__dataclass_fields__["kind"].default == name


def test_every_family_served_is_a_declared_spec():
    reading = QueueReading()
    reading.queued[("q", "none")] = 1
    reading.in_progress["q"] = 1
    reading.oldest_age["q"] = 5.0
    reading.processed[("all", "success")] = 2
    outcomes = Outcomes("t", 5, DURATION, QUEUE_WAIT)
    outcomes.observe_duration("all", 1.5)
    outcomes.observe_wait("all", 0.5)
    reading.histograms.extend((outcomes.duration, outcomes.wait))
    reading.receiver[()] = 1.0
    reading.workers["idle"] = 1
    reading.consumers["q"] = 1
    reading.exists["q"] = 1
    reading.registry[("q", "failed")] = 1
    target = target_from({"name": "t", "kind": "rq", "url": "redis://127.0.0.1/0"})
    families = list(shape_families(target, reading, ScrapeContext(Deadline.after(5))))
    families.append(TaskQueueCollector(target).up(True))
    declared = by_name(SPECS)
    assert len(families) == len(SPECS)
    for family in families:
        spec = declared[family.name + "_total" if family.type == "counter" else family.name]
        assert (family.type, family.documentation) == (spec.type.value, spec.help)
        for sample in family.samples:
            assert tuple(k for k in sample.labels if k != "le") == spec.labels


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_commands_are_packed_byte_for_byte_as_redis_py_packs_them(encoding):
    import redis

    connection = redis.Connection(encoding=encoding)
    batch = [
        ("LLEN", "rq:queue:ünïcode"),
        ("ZCOUNT", b"rq:wip:q", 1767323045.25, "+inf"),
        ("ZRANGE", "k", 0, -1, "WITHSCORES"),
        ("HMGET", "rq:worker:w", "state", "successful_job_count"),
    ]
    assert b"".join(pack(connection, batch)) == b"".join(connection.pack_commands(batch))
