"""Redis as a broker: the connection keys every Redis-based backend shares (`RedisBroker`, built
with the Redis collector's `connection_settings`, so TLS and ACL users work the same way), and
pipelined reads whose every reply wait is bounded by the scrape deadline.

redis-py's timeouts belong to the connection; a scrape deadline shrinks as the scrape goes on.
`read_many` sends a batch of commands in one write and reads each reply with
`read_response(timeout=...)` taken from the deadline, so a Redis that stops answering costs at
most what is left of the scrape. Replies are raw (bytes, ints, lists): the callers only use
commands whose raw reply is what they need (LLEN, ZCOUNT, HGET, SMEMBERS, SCAN...).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from collectors.base import Deadline
from collectors.checks import check_existing_file
from collectors.lookup_effects import Command as Command  # the backends build commands with it
from collectors.lookup_effects import tally
from collectors.own_lookups import LEDGER, server_identity
from collectors.queues_target import Clients, QueueTarget

REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
#: The keys of `RedisBroker`, as the Redis collector's `redis:` entries spell them.
CONNECTION_KEYS = ("username", "ca_file", "cert_file", "key_file", "server_name", "verify")


@dataclass(frozen=True, kw_only=True)
class RedisBroker(QueueTarget):
    """A target read from Redis: the URL plus the connection keys of a `redis:` entry."""

    username: str | None = None
    #: TLS (rediss:// only): a private CA, a client certificate, the name to verify.
    ca_file: str | None = field(default=None, metadata={"check": check_existing_file})
    cert_file: str | None = field(default=None, metadata={"check": check_existing_file})
    key_file: str | None = field(default=None, metadata={"check": check_existing_file})
    server_name: str | None = None
    verify: bool = True

    url_schemes: ClassVar[frozenset[str]] = REDIS_SCHEMES

    def problems(self) -> Iterator[str]:
        yield from super().problems()
        if urlsplit(self.url).scheme in REDIS_SCHEMES:
            try:
                self.connection_target()  # the Redis collector's own checks (TLS keys...)
            except ValueError as exc:
                yield str(exc)

    def connection_target(self) -> Any:
        """This target as a `redis:` entry of the Redis collector (for `connection_settings`)."""
        from collectors.redis import Target

        return Target(
            name=self.name,
            url=self.url,
            username=self.username,
            password=self.password,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            server_name=self.server_name,
            verify=self.verify,
        )

    def redis(self, clients: Clients) -> Any:
        """The redis-py client (the application's in embedded mode), made on first use."""
        return clients.get("redis", self.redis_client, close_redis)

    def redis_client(self) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from collectors.redis import Options, connection_settings

        options = Options(connect_timeout_seconds=self.cap, read_timeout_seconds=self.cap)
        connection_class, kwargs = connection_settings(self.connection_target(), options)
        # one attempt per call: a retry would outlive the scrape deadline
        pool = redis.ConnectionPool(
            connection_class=connection_class, retry=Retry(NoBackoff(), 0), **kwargs
        )
        return redis.Redis(connection_pool=pool)


def close_redis(client: Any) -> None:
    client.close()
    client.connection_pool.disconnect()


#: Commands per write: keeps one batch's buffers small when hundreds of queues are read.
BATCH = 512


def read_many(client: Any, commands: Sequence[Command], deadline: Deadline) -> list[Any]:
    """The raw replies of `commands`, in order. Raises the first error reply or timeout.

    The keyspace hits and misses the commands cause are recorded in the exporter's ledger of
    its own lookups (`collectors.own_lookups`), so the Redis collector leaves them out."""
    replies: list[Any] = []
    if not commands:
        return replies
    pool = client.connection_pool
    server = server_identity(pool.connection_kwargs)
    with LEDGER.batch(server, deadline.timeout()) as own:
        connection = pool.get_connection()
        try:
            for start in range(0, len(commands), BATCH):
                batch = commands[start : start + BATCH]
                connection.send_packed_command(pack(connection, batch))
                for _ in batch:
                    replies.append(connection.read_response(timeout=deadline.timeout()))
            own.add(*settle_lookups(connection, commands, replies, deadline))
        except BaseException as exc:
            # replies may be left unread on the socket: never hand this connection out again
            connection.disconnect()
            counted = tally(commands, [*replies, exc])  # what was read (WRONGTYPE is a hit)
            own.add(counted.hits, counted.misses)
            raise
        finally:
            pool.release(connection)
    return replies


def settle_lookups(
    connection: Any, commands: Sequence[Command], replies: Sequence[Any], deadline: Deadline
) -> tuple[int, int]:
    """Hits and misses of `commands`; keys whose reply does not say whether they exist (ZCOUNT
    0, HGET nil) are settled with one `EXISTS` of them all (counted too)."""
    counted = tally(commands, replies)
    if counted.unsure:
        connection.send_packed_command(pack(connection, [("EXISTS", *counted.unsure)]))
        counted.count_exists(connection.read_response(timeout=deadline.timeout()))
    return counted.hits, counted.misses


@functools.cache
def _hiredis_pack() -> Callable[[Command], bytes] | None:
    try:
        from hiredis import pack_command
    except ImportError:
        return None
    # hiredis' stub types the argument as a 1-tuple; it takes a tuple of any length
    packer: Callable[[Command], bytes] = pack_command  # type: ignore[assignment]
    return packer


def pack(connection: Any, batch: Sequence[Command]) -> list[bytes]:
    """The wire bytes of `batch`: hiredis packs a command about 3x cheaper than redis-py's
    wrapper around it, which matters at hundreds of commands per scrape. redis-py's own packing
    where hiredis is missing or the client encodes keys other than as UTF-8."""
    packer = _hiredis_pack()
    encoder = getattr(connection, "encoder", None)
    if packer is None or getattr(encoder, "encoding", "utf-8").lower() not in ("utf-8", "utf8"):
        packed: list[bytes] = connection.pack_commands(batch)
        return packed
    return [b"".join([packer(command) for command in batch])]


def scan_keys(client: Any, pattern: str, deadline: Deadline, limit: int = 10_000) -> list[bytes]:
    """Keys matching `pattern` by SCAN (never KEYS), at most `limit`, within the deadline."""
    keys: list[bytes] = []
    cursor: bytes | int = 0
    while True:
        reply = read_many(client, [("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)], deadline)
        cursor, found = reply[0]
        keys.extend(found)
        if int(cursor) == 0 or len(keys) >= limit:
            return keys[:limit]


def text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
