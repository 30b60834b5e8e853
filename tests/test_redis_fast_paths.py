"""The Redis collector's fast paths (plain `cmdstat_` values, LATENCY HISTOGRAM entries as Redis
sends them, the one-pass histogram fold) against the general parse and redis-py's own output,
on the replies of a private Redis 7 that this test keeps busy with many commands and errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis._parsers.helpers import parse_info as redis_py_parse_info

from collectors.redis import CommandLatency, command_stats, fold_histograms, parse_info
from collectors.redis.commands import _PLAIN_CMDSTAT
from collectors.redis.parsing import _checked_entry, _plain_entry, parse_latency_histogram
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
