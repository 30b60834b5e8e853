"""The pure half of the Redis collector: INFO parsing and the field -> family mapping, on INFO
dumps captured from real servers (tests/data: Redis 7.0 master and replica, Redis 6.2)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest
from redis._parsers.helpers import parse_info as redis_py_parse_info

from collectors.base import Deadline, ScrapeContext
from collectors.own_lookups import OwnLookups
from collectors.redis import (
    INFO_FIELDS,
    CommandLatency,
    LookupInterval,
    command_stats,
    fold_histograms,
    info_families,
    parse_fields,
    parse_info,
    parse_latency_histogram,
)
from tests.support import exposed_samples, registry_of

DATA = Path(__file__).parent / "data"
DUMPS = ["info_redis7_master.txt", "info_redis7_replica.txt", "info_redis6.txt"]


def dump(name: str) -> str:
    return (DATA / name).read_bytes().decode()


def families_for(name: str, **kwargs):
    ctx = ScrapeContext(Deadline.after(5))
    kwargs.setdefault("command_limit", 100)
    return info_families(parse_info(dump(name)), "cache", ctx=ctx, **kwargs), ctx


def value(families, name: str, **labels: str) -> float | None:
    labels.setdefault("cache", "cache")
    return exposed_samples(families).get((name, frozenset(labels.items())))


def as_number(raw: str) -> float | str:
    try:
        return float(raw)
    except ValueError:
        return raw


@pytest.mark.parametrize("name", DUMPS)
def test_parse_info_agrees_with_redis_py(name):
    """Every field redis-py's typed parser finds is ours too, with the same value."""
    ours = parse_info(dump(name))
    theirs = redis_py_parse_info(dump(name))
    theirs.pop("__raw__", None)
    assert set(ours) == set(theirs)
    for key, expected in theirs.items():
        if isinstance(expected, dict):
            fields = parse_fields(ours[key])
            assert set(fields) == set(expected), key
            for sub, sub_expected in expected.items():
                assert as_number(fields[sub]) == sub_expected, (key, sub)
        elif isinstance(expected, int | float) and not isinstance(expected, bool):
            assert float(ours[key]) == expected, key
        else:
            assert ours[key] == str(expected), key


def test_parse_info_skips_headers_and_keeps_colons_in_values():
    info = parse_info("# Server\r\nredis_version:7.0.15\r\n\r\nexecutable:/a:b\r\nnoise\r\n")
    assert info == {"redis_version": "7.0.15", "executable": "/a:b"}
    # the `host:` pseudo-command (a colon in a command name)
    stats = parse_info("# Commandstats\r\ncmdstat_host::calls=2,usec=3\r\n")
    assert stats == {"cmdstat_host:": "calls=2,usec=3"}
    assert command_stats(stats)["host:"].calls == 2.0


@pytest.mark.parametrize("name", DUMPS)
def test_table_fields_become_samples_in_base_units(name):
    info = parse_info(dump(name))
    families, _ = families_for(name)
    exposed = exposed_samples(families)
    for row in INFO_FIELDS:
        if row.key not in info:
            continue
        got = exposed[(row.spec.name, frozenset({("cache", "cache")}))]
        assert got == pytest.approx(row.convert(info[row.key])), row.key
    assert value(families, "cache_memory_usage_bytes") == float(info["used_memory"])
    assert value(families, "cache_evictions_total") == float(info["evicted_keys"])
    assert value(families, "redis_uptime_seconds") == float(info["uptime_in_seconds"])


def test_unit_conversions_and_statuses():
    families, _ = families_for("info_redis7_master.txt")
    info = parse_info(dump("info_redis7_master.txt"))
    fork = value(families, "redis_latest_fork_seconds")
    assert fork == pytest.approx(float(info["latest_fork_usec"]) / 1e6)
    assert value(families, "redis_rdb_last_bgsave_ok") == (
        1.0 if info["rdb_last_bgsave_status"] == "ok" else 0.0
    )


def test_keyspace_per_db():
    families, _ = families_for("info_redis7_master.txt")
    info = parse_info(dump("info_redis7_master.txt"))
    dbs = [k for k in info if k.startswith("db") and k[2:].isdigit()]
    assert len(dbs) >= 2
    for db in dbs:
        fields = parse_fields(info[db])
        assert value(families, "redis_db_keys", db=db) == float(fields["keys"])
        assert value(families, "redis_db_keys_expiring", db=db) == float(fields["expires"])
        assert value(families, "redis_db_avg_ttl_seconds", db=db) == float(fields["avg_ttl"]) / 1e3


def test_info_family_and_replication_on_master_and_replica():
    master, _ = families_for("info_redis7_master.txt")
    replica, _ = families_for("info_redis7_replica.txt")
    master_info = parse_info(dump("info_redis7_master.txt"))
    labels = {
        "version": master_info["redis_version"],
        "role": "master",
        "mode": master_info["redis_mode"],
        "maxmemory_policy": master_info["maxmemory_policy"],
    }
    assert value(master, "cache_info", **labels) == 1.0
    slave0 = parse_fields(master_info["slave0"])
    assert value(master, "redis_replica_lag_seconds", replica="0") == float(slave0["lag"])
    assert value(master, "redis_connected_replicas") == float(master_info["connected_slaves"])
    replica_roles = [
        dict(labels)["role"]
        for (name, labels), _ in exposed_samples(replica).items()
        if name == "cache_info"
    ]
    assert replica_roles == ["replica"]
    assert value(replica, "redis_master_link_up") == 1.0
    assert value(master, "redis_master_link_up") is None  # only replicas have a master link


def test_per_command_families_match_commandstats():
    families, _ = families_for("info_redis7_master.txt")
    stats = command_stats(parse_info(dump("info_redis7_master.txt")))
    assert "get" in stats and "config|get" in stats
    for cmd, s in stats.items():
        assert value(families, "redis_commands_total", command=cmd) == s.calls
        assert value(families, "redis_commands_duration_seconds_total", command=cmd) == (
            pytest.approx(s.seconds)
        )
        errors = value(families, "cache_operations_total", type=cmd, result="error")
        assert errors == s.rejected + s.failed
    # the dumps were taken after an LPUSH on a string key and an unknown command
    assert value(families, "cache_operations_total", type="lpush", result="error") == 1.0
    assert value(families, "redis_commands_failed_calls_total") == sum(
        s.failed for s in stats.values()
    )
    assert value(families, "redis_commands_rejected_calls_total") == sum(
        s.rejected for s in stats.values()
    )


def test_lookups_become_hit_and_miss_operations():
    families, _ = families_for("info_redis6.txt")
    info = parse_info(dump("info_redis6.txt"))
    hits = value(families, "cache_operations_total", type="lookup", result="hit")
    misses = value(families, "cache_operations_total", type="lookup", result="miss")
    assert (hits, misses) == (float(info["keyspace_hits"]), float(info["keyspace_misses"]))
    assert value(families, "redis_keyspace_hits_total") == hits


def test_errorstats():
    families, _ = families_for("info_redis6.txt")
    info = parse_info(dump("info_redis6.txt"))
    for key in (k for k in info if k.startswith("errorstat_")):
        count = float(parse_fields(info[key])["count"])
        assert value(families, "redis_errors_total", error=key[10:]) == count


def test_command_budget_folds_the_rest_under_other():
    full, _ = families_for("info_redis7_master.txt")
    cut, ctx = families_for("info_redis7_master.txt", command_limit=3)
    stats = command_stats(parse_info(dump("info_redis7_master.txt")))
    exposed = exposed_samples(cut)
    commands = {
        dict(labels)["command"] for (name, labels) in exposed if name == "redis_commands_total"
    }
    assert len(commands) == 4 and "other" in commands
    top3 = sorted(stats, key=lambda c: -stats[c].calls)[:3]
    assert commands == {*top3, "other"}
    assert ctx.series_dropped >= len(stats) - 3
    total = sum(v for (name, _), v in exposed.items() if name == "redis_commands_total")
    assert total == sum(s.calls for s in stats.values())


def stats_info(hits: int, misses: int, *, run_id: str = "a" * 40, uptime: int = 100):
    return {
        "keyspace_hits": str(hits),
        "keyspace_misses": str(misses),
        "run_id": run_id,
        "uptime_in_seconds": str(uptime),
    }


def test_hit_rate_over_the_interval_without_the_exporters_own_lookups():
    interval = LookupInterval()
    first = interval.account(stats_info(30, 10), OwnLookups(2, 5))
    assert first is not None and first.rate is None  # no interval yet
    assert (first.app.hits, first.app.misses) == (28, 5)  # lifetime, own lookups taken out
    # 7 hits and 3 misses of the app, 1 hit and 4 misses of the exporter's own reads
    second = interval.account(stats_info(38, 17, uptime=110), OwnLookups(3, 9))
    assert second is not None and second.rate == 70.0
    assert (second.app.hits, second.app.misses) == (35, 8)
    assert (second.own.hits, second.own.misses) == (3, 9)
    # only the exporter's own lookups (an idle app): no sample, never a 0% hit rate
    idle = interval.account(stats_info(39, 30, uptime=120), OwnLookups(4, 22))
    assert idle is not None and idle.rate is None
    assert (idle.app.hits, idle.app.misses) == (35, 8)


@pytest.mark.parametrize(
    "restart",
    [
        {"run_id": "b" * 40, "uptime": 500},  # a new run id (a restart that took long)
        {"uptime": 5},  # uptime went back
        {"uptime": 130},  # CONFIG RESETSTAT: the counters went back
    ],
)
def test_no_hit_rate_across_a_restart(restart):
    interval = LookupInterval()
    interval.account(stats_info(30, 10), OwnLookups(0, 0))
    interval.account(stats_info(40, 20, uptime=110), OwnLookups(0, 4))
    # 4 hits and 2 misses of the app, 1 miss of the exporter's own after the restart
    after = interval.account(stats_info(4, 3, **restart), OwnLookups(0, 5))
    assert after is not None and after.rate is None
    assert (after.app.hits, after.app.misses) == (4, 2)
    following = interval.account(stats_info(12, 5, **{**restart, "uptime": 600}), OwnLookups(0, 5))
    assert following is not None and following.rate == 80.0  # 8 hits, 2 misses


def test_the_interval_after_a_restart_is_exact_whichever_side_the_own_lookups_fell():
    interval = LookupInterval()
    interval.account(stats_info(40, 20), OwnLookups(0, 4))
    # 50 own misses recorded after that INFO but made before the restart (the old lifetime);
    # then the app's 4 hits and 2 misses and 1 own miss on the new server
    after = interval.account(stats_info(4, 3, run_id="b" * 40, uptime=1), OwnLookups(0, 55))
    assert after is not None and after.rate is None
    assert (after.app.hits, after.app.misses) == (4, 0)  # an estimate, never below 0
    # 8 hits and 2 misses of the app, 5 own misses
    following = interval.account(stats_info(12, 10, run_id="b" * 40, uptime=11), OwnLookups(0, 60))
    assert following is not None and following.rate == 80.0
    assert (following.app.hits - after.app.hits, following.app.misses - after.app.misses) == (8, 2)


def test_corrected_lookups_never_go_back():
    """A batch of own reads counted a scrape late cannot make the counter decrease."""
    interval = LookupInterval()
    interval.account(stats_info(30, 10), OwnLookups(0, 0))
    # the server counted 4 own misses the ledger has not seen yet: the app seems to miss 4
    early = interval.account(stats_info(30, 14, uptime=110), OwnLookups(0, 0))
    assert early is not None and early.app.misses == 14
    late = interval.account(stats_info(30, 14, uptime=120), OwnLookups(0, 4))
    assert late is not None and late.app.misses == 14 and late.rate is None


def test_histogram_fill_forward_and_fold():
    histograms = {
        "get": CommandLatency(5, ((2, 3), (8, 5))),
        "set": CommandLatency(2, ((1, 1), (64, 2))),
        "del": CommandLatency(1, ((16, 1),)),
    }
    folded = fold_histograms(histograms, frozenset({"get"}))
    calls, buckets = folded["get"]
    assert calls == 5
    assert [b for b, _ in buckets] == [1e-6, 4e-6, 16e-6, 64e-6]
    assert [c for _, c in buckets] == [0, 3, 5, 5]
    other_calls, other = folded["other"]
    assert other_calls == 3
    assert [c for _, c in other] == [1, 1, 2, 3]  # set+del added bucket by bucket


def test_parse_latency_histogram_resp2_and_resp3_shapes():
    resp2 = [b"get", [b"calls", 3, b"histogram_usec", [1, 1, 4, 3]]]
    resp3 = {b"get": {b"calls": 3, b"histogram_usec": {1: 1, 4: 3}}}
    expected = {"get": CommandLatency(3, ((1, 1), (4, 3)))}
    assert parse_latency_histogram(resp2) == expected
    assert parse_latency_histogram(resp3) == expected


def test_histogram_family_exposition():
    histograms = {"get": CommandLatency(5, ((2, 3), (8, 5)))}
    families, _ = families_for("info_redis7_master.txt", histograms=histograms)
    stats = command_stats(parse_info(dump("info_redis7_master.txt")))
    name = "cache_operation_duration_seconds"
    assert value(families, f"{name}_count", command="get") == 5.0
    assert value(families, f"{name}_bucket", command="get", le="+Inf") == 5.0
    assert value(families, f"{name}_bucket", command="get", le="4e-06") == 3.0
    assert value(families, f"{name}_sum", command="get") == pytest.approx(stats["get"].seconds)
    without, _ = families_for("info_redis6.txt")
    assert not [k for k in exposed_samples(without) if k[0].startswith(name)]


@pytest.mark.parametrize("name", DUMPS)
def test_exposition_passes_promtool(name):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    histograms = {"get": CommandLatency(5, ((2, 3), (8, 5)))}
    families, _ = families_for(name, histograms=histograms)
    text = generate_latest(registry_of(families))
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


def test_histogram_keeps_fewer_commands_than_the_counters():
    stats = command_stats(parse_info(dump("info_redis7_master.txt")))
    top = sorted(stats, key=lambda c: -stats[c].calls)
    histograms = {cmd: CommandLatency(int(stats[cmd].calls), ((1, int(s.calls)),))
                  for cmd, s in stats.items()}  # fmt: skip
    families, ctx = families_for(
        "info_redis7_master.txt", histograms=histograms, histogram_command_limit=2
    )
    exposed = exposed_samples(families)
    name = "cache_operation_duration_seconds_count"
    counted = {dict(lb)["command"]: v for (n, lb), v in exposed.items() if n == name}
    assert set(counted) == {top[0], top[1], "other"}
    assert sum(counted.values()) == sum(s.calls for s in stats.values())
    other_sum = value(families, "cache_operation_duration_seconds_sum", command="other")
    assert other_sum == pytest.approx(sum(stats[c].seconds for c in top[2:]))
    commands = {dict(lb)["command"] for (n, lb) in exposed if n == "redis_commands_total"}
    assert commands == set(stats)  # the counters keep their own, larger budget
    assert ctx.series_dropped == len(stats) - 2


#: One bad value per kind of line: (line in the Redis 7 dump, what replaces it)
BAD_VALUES = [
    ("cmdstat_get:calls=102,", "cmdstat_get:calls=ABC,"),
    ("keyspace_hits:51", "keyspace_hits:nan"),
    ("evicted_keys:0", "evicted_keys:-5"),
    ("used_memory:1359360", "used_memory:inf"),
    ("total_net_input_bytes:4988", "total_net_input_bytes:+Inf"),
    ("mem_fragmentation_ratio:5.85", "mem_fragmentation_ratio:NaN"),
    ("errorstat_WRONGTYPE:count=1", "errorstat_WRONGTYPE:count=-1"),
    ("db0:keys=52,", "db0:keys=many,"),
    ("lag=1", "lag=nan"),
]


def test_bad_values_are_skipped_and_counted_never_the_instance():
    text = dump("info_redis7_master.txt")
    for good, bad in BAD_VALUES:
        assert text.count(good) == 1, good
        text = text.replace(good, bad)
    ctx = ScrapeContext(Deadline.after(5))
    histograms = {"get": CommandLatency(5, ((2, 3), (8, 5)))}
    families = info_families(
        parse_info(text), "cache", ctx=ctx, command_limit=100, histograms=histograms
    )
    exposed = exposed_samples(families)
    # each bad field counts once, even evicted_keys and keyspace_hits that feed two metrics
    assert value(families, "redis_exporter_info_fields_skipped") == len(BAD_VALUES)
    assert any(note.startswith("INFO fields skipped") for note in ctx.notes)
    for name, labels in [
        ("redis_commands_total", {"command": "get"}),
        ("cache_hit_rate", {}),
        ("cache_operations_total", {"type": "lookup", "result": "hit"}),
        ("cache_evictions_total", {}),
        ("redis_evicted_keys_total", {}),
        ("cache_memory_usage_bytes", {}),
        ("redis_net_input_bytes_total", {}),
        ("redis_memory_fragmentation_ratio", {}),
        ("redis_errors_total", {"error": "WRONGTYPE"}),
        ("redis_db_keys", {"db": "db0"}),
        ("redis_replica_lag_seconds", {"replica": "0"}),
    ]:
        assert value(families, name, **labels) is None, name
    # the rest of the instance is served: other commands, errors, dbs, fields
    assert value(families, "cache_up") == 1.0
    assert value(families, "redis_commands_total", command="set") == 51.0
    assert value(families, "redis_errors_total", error="ERR") == 7.0
    assert value(families, "redis_db_keys", db="db3") == 1.0
    assert value(families, "redis_cpu_sys_seconds_total") == 0.015298
    counters = {f.name for f in families if f.type in ("counter", "histogram")}
    for (name, _), number in exposed.items():
        if any(name.startswith(c) for c in counters):
            assert math.isfinite(number) and number >= 0, name


def test_a_good_dump_skips_nothing():
    families, ctx = families_for("info_redis7_master.txt")
    assert value(families, "redis_exporter_info_fields_skipped") == 0.0
    assert not ctx.notes


def test_malformed_histogram_entries_are_skipped():
    skipped: list[str] = []
    reply = [
        b"get", [b"calls", 3, b"histogram_usec", [1, 1, 4, 3]],
        b"set", [b"calls", b"x", b"histogram_usec", [1, 1]],
        b"del", [b"calls", 2, b"histogram_usec", [1, -2]],
        b"incr", [b"calls", 2],
    ]  # fmt: skip
    parsed = parse_latency_histogram(reply, skipped)
    assert parsed == {"get": CommandLatency(3, ((1, 1), (4, 3)))}
    assert skipped == ["latency_histogram_set", "latency_histogram_del", "latency_histogram_incr"]
