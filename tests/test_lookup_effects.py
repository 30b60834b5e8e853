"""The command table of `collectors.lookup_effects`, measured again on a private redis-server:
for each command, `INFO stats` before and after it, compared with what the table predicts from
the reply (and, where the reply cannot tell, from the `EXISTS` that settles it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from collectors.base import Deadline
from collectors.lookup_effects import EFFECTS, tally
from collectors.own_lookups import LEDGER, server_identity
from collectors.queues_redis_io import read_many
from tests.redis_server import RedisServer, private_redis

#: (command, keys that exist before it): found and missing keys, every reply shape.
CASES: list[tuple[tuple[str | int, ...], str]] = [
    (("LLEN", "list"), "found"),
    (("LLEN", "nolist"), "missing"),
    (("LINDEX", "list", 0), "found"),
    (("LINDEX", "nolist", 0), "missing"),
    (("LINDEX", "list", 5), "found, no element"),
    (("LRANGE", "list", 0, -1), "found"),
    (("LRANGE", "nolist", 0, -1), "missing"),
    (("ZCARD", "zset"), "found"),
    (("ZCARD", "nozset"), "missing"),
    (("ZCOUNT", "zset", 0, "+inf"), "found"),
    (("ZCOUNT", "zset", 100, "+inf"), "found, none in range"),
    (("ZCOUNT", "nozset", 0, "+inf"), "missing"),
    (("ZRANGE", "zset", 0, 0, "WITHSCORES"), "found"),
    (("ZRANGE", "nozset", 0, 0, "WITHSCORES"), "missing"),
    (("ZRANGEBYSCORE", "zset", 100, "+inf"), "found, none in range"),
    (("ZREVRANGEBYSCORE", "zset", "+inf", 0, "LIMIT", 0, 10), "found"),
    (("ZREVRANGEBYSCORE", "zset", "+inf", 100, "LIMIT", 0, 10), "found, none in range"),
    (("ZREVRANGEBYSCORE", "nozset", "+inf", 0, "LIMIT", 0, 10), "missing"),
    (("ZSCORE", "zset", "nomember"), "found, no member"),
    (("HGET", "hash", "field"), "found"),
    (("HGET", "hash", "nofield"), "found, no field"),
    (("HGET", "nohash", "field"), "missing"),
    (("HMGET", "hash", "nofield", "other"), "found, no field"),
    (("HMGET", "nohash", "field", "other"), "missing"),
    (("HGETALL", "hash"), "found"),
    (("HGETALL", "nohash"), "missing"),
    (("HVALS", "hash"), "found"),
    (("HVALS", "nohash"), "missing"),
    (("HLEN", "nohash"), "missing"),
    (("HEXISTS", "hash", "nofield"), "found, no field"),
    (("SMEMBERS", "set"), "found"),
    (("SMEMBERS", "noset"), "missing"),
    (("SCARD", "noset"), "missing"),
    (("SISMEMBER", "set", "nomember"), "found, no member"),
    (("EXISTS", "string", "nostring", "string", "other"), "two found, two missing"),
    (("MGET", "string", "nostring", "string"), "two found, one missing"),
    (("TYPE", "nostring"), "missing"),
    (("TTL", "string"), "found"),
    (("GET", "nostring"), "missing"),
    (("XLEN", "stream"), "found"),
    (("XLEN", "nostream"), "missing"),
    (("SCAN", 0, "MATCH", "*", "COUNT", 1000), "no lookup"),
    (("KEYS", "*"), "no lookup"),
    (("DBSIZE",), "no lookup"),
    (("PING",), "no lookup"),
    (("SUBSCRIBE", "list"), "no lookup"),  # a channel named like a key: still none
    (("PSUBSCRIBE", "/0.celeryev/*"), "no lookup"),
    (("PUBLISH", "list", "x"), "no lookup"),
    (("LLEN", "string"), "WRONGTYPE: found"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with private_redis(tmp_path_factory.mktemp("effects")) as srv:
        yield srv


def fill(client: redis.Redis) -> None:
    client.flushall()
    client.rpush("list", "a", "b")
    client.zadd("zset", {"a": 1, "b": 2})
    client.hset("hash", mapping={"field": "v"})
    client.sadd("set", "a")
    client.set("string", "v")
    client.xadd("stream", {"a": 1})


def stats(client: redis.Redis) -> tuple[int, int]:
    info = client.info("stats")
    return info["keyspace_hits"], info["keyspace_misses"]


def raw_client(server: RedisServer) -> redis.Redis:
    # raw replies, as read_many gets them (no response callbacks)
    return redis.Redis(host="127.0.0.1", port=server.port, protocol=2)


@pytest.mark.parametrize(("command", "case"), CASES, ids=[" ".join(map(str, c)) for c, _ in CASES])
def test_each_command_moves_the_counters_as_the_table_says(server, command, case):
    client = server.client()
    fill(client)
    assert str(command[0]) in EFFECTS
    conn = raw_client(server).connection_pool.get_connection()
    before = stats(client)
    conn.send_command(*command)
    try:
        reply = conn.read_response()
    except redis.ResponseError as exc:
        reply = exc
    counted = tally([command], [reply])
    if counted.unsure:
        conn.send_command("EXISTS", *counted.unsure)
        counted.count_exists(conn.read_response())
    after = stats(client)
    conn.disconnect()
    measured = (after[0] - before[0], after[1] - before[1])
    assert (counted.hits, counted.misses) == measured, case
    assert not counted.unknown


def test_read_many_records_its_lookups_in_the_ledger(server):
    """A batch as the task-queue kinds send it: the ledger gets exactly what INFO counted."""
    client = server.client()
    fill(client)
    commands = [
        ("LLEN", "list"),
        ("LLEN", "nolist"),
        ("ZCOUNT", "zset", 100, "+inf"),  # found, but 0: settled by EXISTS
        ("ZCOUNT", "nozset", 0, "+inf"),  # missing, 0: settled by EXISTS
        ("HGET", "hash", "nofield"),
        ("SMEMBERS", "noset"),
        ("SCAN", 0, "COUNT", 10),
    ]
    reader = raw_client(server)
    identity = server_identity(reader.connection_pool.connection_kwargs)
    own_before = LEDGER.totals(identity)
    before = stats(client)
    replies = read_many(reader, commands, Deadline.after(5))
    after = stats(client)
    own_after = LEDGER.totals(identity)
    reader.close()
    assert replies[0] == 2 and replies[1] == 0
    measured = (after[0] - before[0], after[1] - before[1])
    recorded = (own_after.hits - own_before.hits, own_after.misses - own_before.misses)
    assert recorded == measured
    # list, zset, hash (+ EXISTS zset, EXISTS hash) found; nolist, nozset (+ EXISTS), noset not
    assert recorded == (5, 4)


def test_a_wrongtype_error_still_counts_the_lookups_made(server):
    client = server.client()
    fill(client)
    reader = raw_client(server)
    identity = server_identity(reader.connection_pool.connection_kwargs)
    own_before = LEDGER.totals(identity)
    before = stats(client)
    with pytest.raises(redis.ResponseError):
        read_many(reader, [("LLEN", "nolist"), ("LLEN", "string")], Deadline.after(5))
    after = stats(client)
    own_after = LEDGER.totals(identity)
    reader.close()
    recorded = (own_after.hits - own_before.hits, own_after.misses - own_before.misses)
    assert recorded == (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_server_identity_is_the_address_not_the_db(tmp_path: Path):
    assert server_identity({"host": "127.0.0.1", "port": 6379, "db": 3}) == "127.0.0.1:6379"
    assert server_identity({"host": "Cache.Internal", "port": 6380}) == "cache.internal:6380"
    assert server_identity({"path": "/run/redis.sock", "db": 1}) == "unix:/run/redis.sock"


def test_every_command_the_task_queue_kinds_send_is_in_the_table():
    """A command missing from EFFECTS would not be counted: the kinds' sources name theirs as
    the first string of a command tuple (`("LLEN", key)`)."""
    import re

    root = Path(__file__).parent.parent / "collectors"
    sent = {
        name
        for path in root.glob("queues_*.py")
        for name in re.findall(r'\(\s*"([A-Z]{3,})"\s*,', path.read_text())
    }
    assert {"LLEN", "ZCOUNT", "ZCARD", "SMEMBERS", "HVALS", "SCAN"} <= sent
    assert sent - set(EFFECTS) == set()
