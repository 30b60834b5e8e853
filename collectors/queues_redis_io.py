"""Pipelined Redis reads whose every reply wait is bounded by the scrape deadline.

redis-py's timeouts belong to the connection; a scrape deadline shrinks as the scrape goes on.
`read_many` sends a batch of commands in one write and reads each reply with
`read_response(timeout=...)` taken from the deadline, so a Redis that stops answering costs at
most what is left of the scrape. Replies are raw (bytes, ints, lists): the callers only use
commands whose raw reply is what they need (LLEN, ZCOUNT, HGET, SMEMBERS, SCAN...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collectors.base import Deadline

Command = tuple[str | bytes | int | float, ...]

#: Commands per write: keeps one batch's buffers small when hundreds of queues are read.
BATCH = 512


def read_many(client: Any, commands: Sequence[Command], deadline: Deadline) -> list[Any]:
    """The raw replies of `commands`, in order. Raises the first error reply or timeout."""
    replies: list[Any] = []
    if not commands:
        return replies
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        for start in range(0, len(commands), BATCH):
            batch = commands[start : start + BATCH]
            connection.send_packed_command(connection.pack_commands(batch))
            for _ in batch:
                replies.append(connection.read_response(timeout=deadline.timeout()))
    except BaseException:
        # replies may be left unread on the socket: never hand this connection out again
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
    return replies


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
