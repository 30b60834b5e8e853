"""The Redis collector's fast paths (plain `cmdstat_` values, LATENCY HISTOGRAM entries as Redis
sends them, the one-pass histogram fold) against the general parse and redis-py's own output,
on the replies of a private Redis 7 that this test keeps busy with many commands and errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.samples import Sample
from redis._parsers.helpers import parse_info as redis_py_parse_info

from collectors.base import Deadline, ScrapeContext
from collectors.redis import (
    SPECS,
    CommandLatency,
    LookupInterval,
    command_stats,
    fold_histograms,
    info_families,
    parse_info,
)
from collectors.redis.commands import _PLAIN_CMDSTAT
from collectors.redis.parsing import _checked_entry, _plain_entry, parse_latency_histogram
from collectors.redis.reuse import Reuse
from tests.redis_server import RedisServer, private_redis

DATA = Path(__file__).parent / "data"


def busy(client: redis.Redis) -> None:
    """Dozens of commands (subcommands too), several dbs and error prefixes."""
    pipe = client.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"s{i}", i, ex=3600).get(f"s{i}").incr("n").append("a", "x").strlen("a")
        pipe.lpush("l", i).lrange("l", 0, 3).rpop("l").hset("h", f"f{i}", i).hgetall("h")
        pipe.sadd("set", i).smembers("set").zadd("z", {f"m{i}": i}).zrange("z", 0, 2)
        pipe.exists(f"missing{i}").ttl(f"s{i}").pfadd("p", i).xadd("x", {"a": i})
        pipe.execute_command("CONFIG", "GET", "maxmemory").execute_command(
            "OBJECT", "ENCODING", "h"
        )
    pipe.execute()
    for db in (1, 2):
        redis.Redis(port=client.connection_pool.connection_kwargs["port"], db=db).set("k", 1)
    for bad in (("LPUSH", "s1", "x"), ("NOSUCHCOMMAND",), ("GET",), ("EVALSHA", "a" * 40, 0)):
        with contextlib.suppress(redis.ResponseError):
            client.execute_command(*bad)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with private_redis(tmp_path_factory.mktemp("redis-fast")) as started:
        busy(started.client())
        yield started


def raw(client: redis.Redis, *command: str) -> object:
    """The reply as the server sent it (no response callback, no decoding)."""
    client.set_response_callback(command[0], lambda response, **options: response)
    return client.execute_command(*command, NEVER_DECODE=True)


def raw_info(server: RedisServer) -> str:
    reply = raw(server.client(), "INFO", "ALL")
    assert isinstance(reply, bytes)
    return reply.decode()


def histogram_reply(server: RedisServer, protocol: int) -> object:
    return raw(server.client(protocol=protocol), "LATENCY", "HISTOGRAM")


def test_plain_cmdstat_values_read_as_redis_py_reads_them(server):
    text = raw_info(server)
    theirs = redis_py_parse_info(text)
    stats = command_stats(parse_info(text))
    plain = [k for k, v in parse_info(text).items() if k.startswith("cmdstat_")]
    assert len(plain) >= 20 and "config|get" in stats
    for key in plain:
        assert _PLAIN_CMDSTAT.fullmatch(parse_info(text)[key]), key  # Redis 7 takes the fast path
        expected = theirs[key]
        got = stats[key[8:]]
        assert got.calls == expected["calls"], key
        assert got.seconds == expected["usec"] / 1e6, key
        assert (got.rejected, got.failed) == (expected["rejected_calls"], expected["failed_calls"])


@pytest.mark.parametrize(
    "value",
    [
        "calls=3,usec=12,usec_per_call=4.00,rejected_calls=1,failed_calls=2",
        "calls=3,usec=12,usec_per_call=4.00",  # Redis < 6.2: the general parse
        "calls=3,usec=12,usec_per_call=4.00,rejected_calls=1,failed_calls=2,extra=7",
        "usec=12,calls=3,usec_per_call=4.00,rejected_calls=1,failed_calls=2",
        "calls=" + "9" * 400 + ",usec=1,usec_per_call=1,rejected_calls=0,failed_calls=0",
        "calls=3,usec=-12,usec_per_call=4.00,rejected_calls=1,failed_calls=2",
        "calls=1e3,usec=12,usec_per_call=4.00,rejected_calls=1,failed_calls=2",
    ],
)
def test_fast_and_general_cmdstat_parses_agree(value):
    fast, general = [], []
    got = command_stats({"cmdstat_get": value}, fast)
    # the general parse alone: a value the fast pattern cannot match, same fields
    reordered = ",".join(reversed(value.split(",")))
    assert not _PLAIN_CMDSTAT.fullmatch(reordered)
    expected = command_stats({"cmdstat_get": reordered}, general)
    assert got == expected and fast == general


@pytest.mark.parametrize("protocol", [2, 3])
def test_histogram_fast_path_matches_the_checking_parse(server, protocol):
    reply = histogram_reply(server, protocol)
    details = reply.values() if isinstance(reply, dict) else reply[1::2]
    assert len(details) >= 20
    for detail in details:
        fast = _plain_entry(detail)
        assert fast is not None  # Redis 7's replies take the fast path
        assert fast == _checked_entry(detail)
    skipped: list[str] = []
    parsed = parse_latency_histogram(reply, skipped)
    assert not skipped and parsed["get"].calls == 50 and parsed["config|get"].calls == 50


def filled_forward(histograms, kept):
    """The fold as documented, the slow way: each command's last count at or below each power
    of four, added up under `other` for the commands not kept."""
    top = max((h.buckets[-1][0] for h in histograms.values() if h.buckets), default=1)
    bounds = [1]
    while bounds[-1] < top:
        bounds.append(bounds[-1] * 4)
    out: dict[str, tuple[int, list[int]]] = {}
    for cmd, h in histograms.items():
        key = cmd if cmd in kept else "other"
        counts = [max([c for b, c in h.buckets if b <= bound] or [0]) for bound in bounds]
        calls, before = out.get(key, (0, [0] * len(bounds)))
        out[key] = (calls + h.calls, [a + b for a, b in zip(before, counts, strict=True)])
    return {
        cmd: (calls, [(b / 1e6, c) for b, c in zip(bounds, counts, strict=True)])
        for cmd, (calls, counts) in out.items()
    }


def test_histogram_fold_matches_the_documented_fill_forward(server):
    histograms = parse_latency_histogram(histogram_reply(server, 2))
    ranked = sorted(histograms, key=lambda c: -histograms[c].calls)
    for kept in (frozenset(), frozenset(ranked[:3]), frozenset(ranked)):
        assert fold_histograms(histograms, kept) == filled_forward(histograms, kept)
    # bounds between powers of four, unsorted input sorted by the parse, a zero bound
    odd = parse_latency_histogram(
        [
            b"a",
            [b"calls", 9, b"histogram_usec", [33, 5, 2, 1, 0, 0, 4097, 9]],
            b"b",
            [b"calls", 2, b"histogram_usec", [5, 1, 16, 2]],
        ]  # fmt: skip
    )
    assert odd["a"] == CommandLatency(9, ((0, 0), (2, 1), (33, 5), (4097, 9)))
    for kept in (frozenset(), frozenset({"a"})):
        assert fold_histograms(odd, kept) == filled_forward(odd, kept)


@pytest.mark.parametrize(
    "detail",
    [
        [b"calls", 3, b"histogram_usec", [1, 1, 4, 3]],
        [b"calls", b"3", b"histogram_usec", [1, 1, 4, 3]],  # bulk strings: the checking parse
        [b"calls", 3, b"histogram_usec", [4, 3, 1, 1]],  # out of order: sorted
        [b"calls", 3, b"histogram_usec", [4, 3, 4, 1]],  # a repeated bound: sorted by count
        [b"calls", 3, b"histogram_usec", [1, 1.5]],  # a float: truncated like int()
        [b"calls", 3, b"histogram_usec", [1, -1]],
        [b"calls", True, b"histogram_usec", []],
        [b"calls", 3, b"histogram_usec", [1, 1], b"extra", 1],
        {b"calls": 3, b"histogram_usec": {4: 3, 1: 1}},
        {b"calls": 3, b"histogram_usec": {1: b"x"}},
        {"calls": 3, "histogram_usec": {1: 1}},  # a decoding client's str keys
    ],
)
def test_fast_histogram_entries_equal_the_checking_parse(detail):
    fast = _plain_entry(detail)
    assert fast is None or fast == _checked_entry(detail)
    reply = [b"get", detail]
    assert parse_latency_histogram(reply).get("get") == _checked_entry(detail)


def test_dumps_take_the_fast_cmdstat_path_where_redis_writes_it():
    """Redis 7 writes every cmdstat value in the plain shape; the 6.2 dump too."""
    for name in ("info_redis7_master.txt", "info_redis6.txt"):
        info = parse_info((DATA / name).read_text())
        values = [v for k, v in info.items() if k.startswith("cmdstat_") and k != "cmdstat_host:"]
        assert values and all(_PLAIN_CMDSTAT.fullmatch(v) for v in values), name


def shape(families):
    """Everything a consumer can see of `families`: types, names, help, unit, and per sample
    its type, labels, value's type and repr (so -0.0 and 0, 1 and 1.0 differ) and the rest."""
    return [
        (type(f), f.name, f.documentation, f.type, f.unit)
        + tuple((type(s), s.labels, type(s.value), repr(s.value), s[3:]) for s in f.samples)
        for f in families
    ]


def library_built(families):
    """The same families made by prometheus_client itself: the spec's family and add_metric per
    sample (histograms: the library's Sample for each), to compare the direct builds with."""
    specs = {spec.name.removesuffix("_total"): spec for spec in SPECS}  # as families name them
    rebuilt = []
    for f in families:
        spec = specs[f.name]
        copy = spec.family()
        for s in f.samples:
            if isinstance(copy, CounterMetricFamily | GaugeMetricFamily):
                copy.add_metric([s.labels[name] for name in spec.labels], s.value)
            else:
                copy.samples.append(Sample(s.name, dict(s.labels), s.value))
        rebuilt.append(copy)
    return rebuilt


def scrape_replies(server: RedisServer) -> tuple[bytes, object]:
    return raw(server.client(), "INFO", "ALL"), histogram_reply(server, 2)


def families_of(replies, interval, reuse):
    info_raw, hist = replies
    skipped: list[str] = []
    ctx = ScrapeContext(Deadline.after(5))
    histograms = parse_latency_histogram(hist, skipped, None if reuse is None else reuse.histograms)
    families = info_families(
        parse_info(info_raw.decode()),
        "cache",
        ctx=ctx,
        command_limit=12,
        histogram_command_limit=4,
        interval=interval,
        histograms=histograms,
        skipped=skipped,
        reuse=reuse,
    )
    return shape(families), ctx.notes, ctx.series_dropped


def test_directly_built_samples_and_families_are_the_librarys(server):
    families = info_families(
        parse_info(raw_info(server)),
        "cache",
        ctx=ScrapeContext(Deadline.after(5)),
        command_limit=40,
        histograms=parse_latency_histogram(histogram_reply(server, 2)),
    )
    assert sum(len(f.samples) for f in families) > 200
    assert shape(families) == shape(library_built(families))


def test_scrapes_reusing_unchanged_lines_equal_scrapes_building_everything(server):
    """A sequence of scrapes of a server whose traffic changes between them (new commands,
    new errors, dbs filled and emptied, a command turned bad in a dump): with `Reuse` and
    without, the families, notes and dropped series are the same, scrape by scrape."""
    client = server.client()
    reuse, plain, reused = Reuse(), LookupInterval(), LookupInterval()
    for step in range(8):
        replies = scrape_replies(server)
        assert families_of(replies, reused, reuse) == families_of(replies, plain, None), step
        # and the same reply again: everything reused
        assert families_of(replies, reused, reuse) == families_of(replies, plain, None), step
        if step == 1:
            busy(client)
        elif step == 2:
            client.flushdb()
        elif step == 3:
            for bad in (("LPUSH", "s1", "x"), ("XADD",), ("FOO",)):
                with contextlib.suppress(redis.ResponseError):
                    client.execute_command(*bad)
        elif step in (4, 5):  # a line turned bad, then good again
            info_raw, hist = replies
            if step == 4:
                info_raw = info_raw.replace(b"cmdstat_get:calls=", b"cmdstat_get:calls=x")
                info_raw = info_raw.replace(b"db1:keys=", b"db1:keys=x")
                hist = [*hist[:2], b"set", [b"calls", b"?", b"histogram_usec", []]]
            got = families_of((info_raw, hist), reused, reuse)
            assert got == families_of((info_raw, hist), plain, None), step
        else:
            client.incr(f"step{step}")
    assert all((reuse.cmdstats, reuse.histograms, reuse.commands, reuse.counts, reuse.buckets))
    assert reuse.dbs


def test_reused_parses_are_the_parses():
    reuse = Reuse()
    for value in (
        "calls=3,usec=12,usec_per_call=4.00,rejected_calls=1,failed_calls=2",
        "calls=3,usec=12,usec_per_call=4.00,rejected_calls=1,failed_calls=2",
        "calls=-0,usec=-0,usec_per_call=0,rejected_calls=-0,failed_calls=-0",  # a -0 reads as 0: == could not tell them apart
        "calls=0,usec=0,usec_per_call=0",
        "calls=x",
        "calls=x",
        "calls=4,usec=12,usec_per_call=3.00",
    ):
        skipped: list[str] = []
        fresh: list[str] = []
        got = command_stats({"cmdstat_get": value}, skipped, reuse.cmdstats)
        assert got == command_stats({"cmdstat_get": value}, fresh) and skipped == fresh
        assert [repr(v) for s in got.values() for v in s] == [
            repr(v) for s in command_stats({"cmdstat_get": value}).values() for v in s
        ]
    minus_zero = "calls=-0,usec=-0,usec_per_call=0,rejected_calls=-0,failed_calls=-0"
    assert list(map(repr, command_stats({"cmdstat_get": minus_zero})["get"])) == ["0.0"] * 4
    for reply in (
        [b"get", [b"calls", 3, b"histogram_usec", [1, 1, 4, 3]]],
        [b"get", [b"calls", 3, b"histogram_usec", [1, 1, 4, 3]]],
        [b"get", [b"calls", 3.0, b"histogram_usec", [1, 1, 4, 3]]],  # == but not plain
        [b"get", [b"calls", b"3", b"histogram_usec", [1, 1, 4, 3]]],
        [b"get", [b"calls", b"?", b"histogram_usec", [1, 1]]],
        [[b"unhashable"], [b"calls", 3, b"histogram_usec", [1, 1]]],
        {b"get": {b"calls": 3, b"histogram_usec": {1: 1}}},
    ):
        skipped, fresh = [], []
        got = parse_latency_histogram(reply, skipped, reuse.histograms)
        assert got == parse_latency_histogram(reply, fresh) and skipped == fresh
