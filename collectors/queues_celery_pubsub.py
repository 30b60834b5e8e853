"""Celery's events on Redis, received by pub/sub alone: the receiver looks up no key.

On Redis, kombu makes Celery's event exchange a fanout exchange, and kombu's Redis transport
publishes a fanout message with `PUBLISH` on the channel
`<global_keyprefix>/<db>.<exchange>/<routing_key>` (`fanout_prefix` `/{db}.` and
`fanout_patterns` are on by default since kombu 4; the db is the connection's). Celery's
`EventReceiver`, through kombu, subscribes with `PSUBSCRIBE <global_keyprefix>/<db>.<exchange>/*`
(the binding key `#` turned into `*`). But kombu, around that subscription, also declares and
binds a queue of its own (LLEN of each priority list: misses; SADD and EVALSHA on
`_kombu.binding.*`; a sweep of `_kombu.binding_deadlines`: a hit), and each such lookup would
show in the cache numbers of a Redis collector on the same server.

So on Redis the exporter subscribes itself, with redis-py: `PSUBSCRIBE` (and `PING` to notice a
dead link) are the only commands, and neither looks a key up (tests/test_task_queue_events.py
checks `keyspace_hits`/`keyspace_misses` around a receiver that runs for seconds). Each
message is kombu's envelope, JSON:
`{"body": ..., "content-type": "application/json", "content-encoding": "utf-8",
"headers": {...}, "properties": {"body_encoding": "base64", "delivery_info": {...}, ...}}`,
whose body (base64 of the serialized event, or of a list of events for `task.multi`) is what
Celery's receiver decodes. Only JSON bodies are accepted, as kombu's receiver accepted.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

#: kombu's default `fanout_prefix`: the connection's db number between `/` and `.`.
FANOUT_PREFIX = "/{db}."
JSON = "application/json"


class Undecodable(ValueError):
    """A published message that is not a JSON kombu message with a JSON body."""


def event_pattern(exchange: str, db: int, key_prefix: str = "") -> str:
    """The pattern kombu's Redis transport subscribes for a `#` binding of `exchange`
    (`_get_subscribe_topic`), glob characters in the names taken literally."""
    prefix = key_prefix + FANOUT_PREFIX.format(db=db) + exchange
    return _glob_literal(prefix) + "/*"


def _glob_literal(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def decode(data: bytes | str) -> Any:
    """The event, or list of events, one published kombu message carries."""
    try:
        message = json.loads(data)
        if not isinstance(message, dict):
            raise Undecodable("not a kombu message")
        if message.get("content-type") != JSON:
            raise Undecodable(f"content type {message.get('content-type')!r} is not JSON")
        if (message.get("headers") or {}).get("compression"):
            raise Undecodable("compressed events are not supported")
        body = message.get("body")
        encoding = str(message.get("content-encoding") or "utf-8")
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(str(body)).decode(encoding)
        return json.loads(body) if isinstance(body, str | bytes) else body
    except (ValueError, TypeError, LookupError) as exc:
        if isinstance(exc, Undecodable):
            raise
        raise Undecodable(f"{type(exc).__name__}: {exc}") from None


def listen(
    client: Any,
    pattern: str,
    on_body: Callable[[Any], None],
    stop: threading.Event,
    connected: Callable[[], None],
    drain_seconds: float,
    heartbeat_seconds: float,
) -> None:
    """Subscribe to `pattern` and hand each message's body to `on_body` until `stop` is set.

    Raises on a broken link (the caller reconnects): a server that goes away closes the socket;
    one that stops answering is noticed because a `PING` sent after `heartbeat_seconds` of
    silence gets no `pong` within `heartbeat_seconds` more.
    """
    pubsub = client.pubsub()
    try:
        pubsub.psubscribe(pattern)
        heard = time.monotonic()
        pinged: float | None = None
        subscribed = False
        while not stop.is_set():
            message = pubsub.get_message(timeout=drain_seconds)
            now = time.monotonic()
            if message is not None:
                heard, pinged = now, None
                message_type = message.get("type")
                if message_type == "psubscribe" and not subscribed:
                    subscribed = True
                    connected()
                elif message_type == "pmessage":
                    on_body(message.get("data"))
                continue
            if pinged is not None and now - pinged > heartbeat_seconds:
                raise ConnectionError(f"no answer to PING for {heartbeat_seconds:g} s")
            if pinged is None and now - heard > heartbeat_seconds:
                pubsub.ping()
                pinged = now
    finally:
        pubsub.close()
