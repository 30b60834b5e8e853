"""How each command the exporter sends moves a Redis server's `keyspace_hits`/`keyspace_misses`.

Measured, not guessed: `INFO stats` read before and after each command on a private Redis
7.0.15 (tests/test_lookup_effects.py repeats the measurement for every row, so a server that
counts differently fails a test). What was found:

- A read of a key counts once per key: a **hit** when the key exists (also when the command
  then fails with WRONGTYPE, or finds no field or member in it), a **miss** when it does not.
  Multi-key reads (EXISTS, MGET) count per key, duplicates included.
- Writes (LPUSH, SADD, HSET, DEL) and blocking pops (BRPOP) look keys up for writing: no count.
  Neither do SCAN, KEYS, DBSIZE, INFO, PING and LATENCY, nor pub/sub (PUBLISH, SUBSCRIBE,
  PSUBSCRIBE: channels are not keys, even when named like one).
- Pipelines and MULTI/EXEC count like the same commands sent one by one.

Whether the key existed is read from the reply wherever the reply tells (Redis deletes empty
lists, sets, hashes and sorted sets, so LLEN 0 means no key). Where it does not (ZCOUNT 0,
HGET nil, ...), the key is *unsure*: the caller asks `EXISTS` for those keys and counts them by
its answer (see `collectors.queues_redis_io.read_many`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Command = tuple[str | bytes | int | float, ...]
#: What a reply says about its key: True found, False missing, None the reply does not tell.
Found = bool | None


def _positive(reply: Any) -> Found:
    return True if int(reply) > 0 else False


def _positive_or_unsure(reply: Any) -> Found:
    return True if int(reply) > 0 else None


def _non_empty(reply: Any) -> Found:
    return True if len(reply) else False


def _not_nil(reply: Any) -> Found:
    return reply is not None


def _not_nil_or_unsure(reply: Any) -> Found:
    return True if reply is not None else None


def _any_not_nil_or_unsure(reply: Any) -> Found:
    return True if any(value is not None for value in reply) else None


def _type(reply: Any) -> Found:
    return (reply.decode() if isinstance(reply, bytes) else str(reply)) != "none"


def _ttl(reply: Any) -> Found:
    return int(reply) != -2


@dataclass(frozen=True)
class Effect:
    """One command's effect: which arguments are keys and what a reply says about them."""

    #: Key arguments: a slice of the command's arguments (after the name); empty: no lookup.
    #: Single-key commands read their first argument; multi-key ones (`per_key`) all of them.
    keys: slice = field(default_factory=lambda: slice(0, 0))
    #: reply -> found/missing/unsure, for single-key commands.
    found: Callable[[Any], Found] = _not_nil
    #: For commands taking a start index (LINDEX, LRANGE, ZRANGE): an empty reply means no
    #: key only when the index is 0 or -1 (the list's ends); elsewhere it is unsure.
    index_argument: int | None = None
    #: Multi-key commands: the reply counts (EXISTS) or lists (MGET) found keys.
    per_key: str = ""


NO_LOOKUP = Effect()
ONE_KEY = slice(0, 1)

#: Command -> effect on keyspace_hits/misses, as measured (see the module docstring).
# fmt: off
EFFECTS: dict[str, Effect] = {
    # no key lookup at all
    **dict.fromkeys(
        ("SCAN", "KEYS", "DBSIZE", "INFO", "PING", "LATENCY", "CLIENT", "SELECT", "HELLO",
         "AUTH", "ECHO", "TIME", "PUBLISH", "SUBSCRIBE", "PSUBSCRIBE", "LPUSH", "RPUSH",
         "SADD", "SREM", "HSET", "HDEL", "DEL", "UNLINK", "EXPIRE", "BRPOP", "BLPOP"),
        NO_LOOKUP,
    ),
    # the reply says whether the key exists (empty containers do not exist in Redis)
    "LLEN": Effect(ONE_KEY, _positive),
    "ZCARD": Effect(ONE_KEY, _positive),
    "SCARD": Effect(ONE_KEY, _positive),
    "HLEN": Effect(ONE_KEY, _positive),
    "SMEMBERS": Effect(ONE_KEY, _non_empty),
    "HVALS": Effect(ONE_KEY, _non_empty),
    "HKEYS": Effect(ONE_KEY, _non_empty),
    "HGETALL": Effect(ONE_KEY, _non_empty),
    "GET": Effect(ONE_KEY, _not_nil),
    "TYPE": Effect(ONE_KEY, _type),
    "TTL": Effect(ONE_KEY, _ttl),
    "PTTL": Effect(ONE_KEY, _ttl),
    "LINDEX": Effect(ONE_KEY, _not_nil, index_argument=1),
    "LRANGE": Effect(ONE_KEY, _non_empty, index_argument=1),
    "ZRANGE": Effect(ONE_KEY, _non_empty, index_argument=1),
    # a found key can give the same reply as a missing one: unsure unless positive
    "ZCOUNT": Effect(ONE_KEY, _positive_or_unsure),
    "XLEN": Effect(ONE_KEY, _positive_or_unsure),  # a stream can exist empty
    "ZRANGEBYSCORE": Effect(ONE_KEY, lambda reply: True if len(reply) else None),
    "ZREVRANGEBYSCORE": Effect(ONE_KEY, lambda reply: True if len(reply) else None),
    "ZSCORE": Effect(ONE_KEY, _not_nil_or_unsure),
    "HGET": Effect(ONE_KEY, _not_nil_or_unsure),
    "HMGET": Effect(ONE_KEY, _any_not_nil_or_unsure),
    "HEXISTS": Effect(ONE_KEY, _positive_or_unsure),
    "SISMEMBER": Effect(ONE_KEY, _positive_or_unsure),
    # multi-key: one lookup per key
    "EXISTS": Effect(slice(0, None), per_key="count"),
    "MGET": Effect(slice(0, None), per_key="list"),
}
# fmt: on


@dataclass
class Tally:
    """Hits and misses a batch of commands caused, and the keys its replies left unsure."""

    hits: int = 0
    misses: int = 0
    unsure: list[Any] = field(default_factory=list)
    #: Commands missing from `EFFECTS` (their lookups, if any, are not counted).
    unknown: set[str] = field(default_factory=set)

    def add(self, found: Found, key: Any) -> None:
        """One key's lookup: a hit, a miss, or unsure (settled later by EXISTS)."""
        if found is None:
            self.unsure.append(key)
        elif found is True:
            self.hits += 1
        else:
            self.misses += 1

    def count_command(self, command: Command, reply: Any) -> None:
        """Count one command by its reply (an exception instance for an error reply)."""
        first = command[0]
        effect = EFFECTS.get(first) if isinstance(first, str) else None  # as the backends spell it
        if effect is None:
            effect = EFFECTS.get(_name(command))
        if effect is None:
            self.unknown.add(_name(command))
            return
        if effect is NO_LOOKUP or len(command) < 2:
            return
        if isinstance(reply, BaseException):
            # WRONGTYPE: the key was found first; any other error reply looked nothing up
            if str(reply).startswith("WRONGTYPE"):
                self.hits += len(command[1:][effect.keys])
            return
        if effect.per_key == "count":
            existing = int(reply)
            self.hits += existing
            self.misses += len(command) - 1 - existing
        elif effect.per_key == "list":
            for value in reply:
                self.add(value is not None, None)
        else:
            found: Found = effect.found(reply)
            if found is False and effect.index_argument is not None:
                if str(_text(command[1 + effect.index_argument])) not in ("0", "-1"):
                    found = None
            self.add(found, command[1])

    def count_exists(self, reply: Any) -> None:
        """Settle the unsure keys by `EXISTS unsure...`: each found key is a hit for the first
        command and one for EXISTS, each missing one a miss for both."""
        existing = int(reply)
        self.hits += 2 * existing
        self.misses += 2 * (len(self.unsure) - existing)
        self.unsure = []


def tally(commands: Sequence[Command], replies: Sequence[Any]) -> Tally:
    """The hits and misses of `commands` given their replies (pure)."""
    counted = Tally()
    for command, reply in zip(commands, replies, strict=False):
        counted.count_command(command, reply)
    return counted


def _name(command: Command) -> str:
    return str(_text(command[0])).upper()


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
