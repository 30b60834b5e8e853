"""Celery task outcomes and live workers, followed from Celery's own events.

Celery keeps no outcome totals anywhere: workers started with `-E` (`worker_send_task_events`)
publish task events, and every worker publishes `worker-heartbeat` every `--heartbeat-interval`
seconds (2 by default) unless started `--without-heartbeat`. `CeleryEvents` listens on a
connection of the exporter's own (no Celery needed; in a daemon thread started on the first
scrape, reconnecting by itself): on Redis a pub/sub subscription of redis-py's, which looks no
key up (collectors/queues_celery_pubsub.py), on RabbitMQ kombu and the queue Celery's
`EventReceiver` binds. It counts, per task name:

- `task-succeeded` success (run time: its `runtime`), `task-failed` failure (run time: its
  timestamp minus its `task-started`'s), `task-retried` retry, `task-rejected` rejected,
  `task-revoked` revoked;
- queue wait: `task-started` minus `task-sent` (producers with `task_send_sent_event`), else
  minus `task-received` (the time in the worker's prefetch only), or minus the ETA when later.

Only `task-sent` and `task-received` carry the task's name: the other events are matched by
uuid to a bounded memory of tasks seen (`TASK_MEMORY`, oldest forgotten first); a task whose
name was never seen is counted as type `unknown`. A worker is online while its heartbeats
arrive: gone two heartbeat intervals after the last one (Celery's own `HEARTBEAT_EXPIRE_WINDOW`)
or at once on `worker-offline`, so a worker killed with SIGKILL drops out within 2 x its
`--heartbeat-interval`. Events published while the receiver is not connected are lost (Redis
delivers them by pub/sub; on RabbitMQ the receiver's queue keeps them for `event_queue_ttl`).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from collectors.base import ScrapeContext
from collectors.queues_celery_pubsub import Undecodable, decode, event_pattern, listen
from collectors.queues_model import QueueReading
from collectors.queues_outcomes import Outcomes, OutcomeTracker
from collectors.secret import redact

log = logging.getLogger("afirgen_exporter.collector")

UNKNOWN_TYPE = "unknown"
#: Tasks remembered between their task-sent/received and their outcome (oldest forgotten).
TASK_MEMORY = 50_000
#: Ended tasks whose name is kept for a late event (task-rejected follows task-failed).
ENDED_MEMORY = 10_000
#: A worker is gone this many heartbeat intervals after its last heartbeat (Celery's 200%).
EXPIRE_INTERVALS = 2.0
DEFAULT_FREQ = 2.0
#: Waits between reconnection attempts: doubling from the first to the last.
BACKOFF = (1.0, 15.0)
#: The receiver checks for a stop this often; close() waits at most STOP_WAIT for it.
DRAIN_SECONDS = 1.0
STOP_WAIT = 2.0
#: Celery's `event_queue_ttl` and `event_queue_expires` defaults (RabbitMQ): events wait 5 s
#: for the receiver, and its queue goes 60 s after the receiver does.
QUEUE_TTL, QUEUE_EXPIRES = 5.0, 60.0
#: AMQP heartbeat, so a connection dropped by the network is noticed (checked every drain)
HEARTBEAT_SECONDS = 10.0
OUTCOMES = {
    "task-succeeded": "success",
    "task-failed": "failure",
    "task-retried": "retry",
    "task-rejected": "rejected",
    "task-revoked": "revoked",
}


@dataclass(frozen=True)
class AppSettings:
    """What a client of the exporter's own needs to reach the workers' broker (events here, a
    Celery app for inspect in queues_celery)."""

    broker_url: str
    transport_options: Mapping[str, Any]
    control_exchange: str
    event_exchange: str
    connect_timeout: float


@dataclass
class Seen:
    """What the events told about one task so far."""

    name: str = UNKNOWN_TYPE
    sent: float | None = None
    received: float | None = None
    eta: float | None = None
    started: float | None = None


class CeleryEvents(OutcomeTracker):
    """Counts task events and tracks worker heartbeats; the receiver thread starts on the
    first `read` and stops on `close`, reconnecting by itself while it runs."""

    def __init__(
        self,
        outcomes: Outcomes,
        settings: AppSettings,
        secrets: tuple[str, ...],
        redis_client: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(outcomes)
        self.settings = settings
        #: Redis brokers: makes the redis-py client the receiver subscribes with (no kombu)
        self._redis_client = redis_client
        self._secrets = secrets
        self._lock = threading.Lock()
        self._tasks: OrderedDict[str, Seen] = OrderedDict()
        #: uuid -> name of tasks that ended, for an event that follows the end
        self._ended: OrderedDict[str, str] = OrderedDict()
        #: hostname -> (monotonic time of its last event, heartbeat interval)
        self._workers: dict[str, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: monotonic time the receiver connected; None while it is not connected
        self.connected_since: float | None = None
        #: why events cannot be followed (kombu missing), for the landing page
        self.problem = ""
        #: why the last published message was dropped (not JSON...), for the landing page
        self.dropped = ""

    # -- scrape side ------------------------------------------------------------------------

    def read(self, clients: Any, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        self.start()
        if self.problem:
            ctx.note(self.problem)
        if self.dropped:
            ctx.note(self.dropped)
        since = self.connected_since
        reading.receiver[()] = 0.0 if since is None else 1.0
        online = self.online(time.monotonic())
        if online is not None:
            bound = reading.workers.get("online", 0.0)
            if bound and not online:
                ctx.note(
                    "workers are bound to the pidbox but send no heartbeats: check "
                    "event_exchange and that workers run without --without-heartbeat"
                )
            reading.workers["online"] = float(online)
            reading.has_workers = True
        # inspect's per-task totals (status accepted) go under the same stable type labels
        for (task, status), count in list(reading.processed.items()):
            label = self.outcomes.label(task)
            if label != task:
                del reading.processed[(task, status)]
                reading.processed[(label, status)] += count
        self.outcomes.fill(reading, ctx)

    def online(self, at: float) -> int | None:
        """Workers whose heartbeats arrive; None until the receiver has listened long enough to
        have heard every live worker (then the broker's own view, if any, stands)."""
        since = self.connected_since
        with self._lock:
            longest = max((freq for _, freq in self._workers.values()), default=DEFAULT_FREQ)
            if since is None or at - since < EXPIRE_INTERVALS * longest:
                return None
            for host, (last, freq) in list(self._workers.items()):
                if at - last > EXPIRE_INTERVALS * freq:
                    del self._workers[host]  # gone: no heartbeat for two intervals
            return len(self._workers)

    # -- receiver thread --------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            try:
                if self._redis_client is None:
                    import kombu  # noqa: F401 - only to tell a missing kombu apart
            except ImportError:
                self.problem = "kombu is not installed: task events are not followed"
                self._stop.set()
                return
            self._thread = threading.Thread(
                target=self._run, name=f"celery-events-{self.outcomes.target_name}", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT)

    def _run(self) -> None:
        wait, longest = BACKOFF
        failing = False
        try:
            while not self._stop.is_set():
                try:
                    self._consume()
                    wait, _ = BACKOFF
                except Exception as exc:  # noqa: BLE001 - any broker failure: reconnect
                    if not failing:
                        detail = redact(f"{type(exc).__name__}: {exc}", self._secrets)[:300]
                        log.warning(
                            "celery events disconnected target=%s detail=%s; reconnecting",
                            self.outcomes.target_name,
                            detail,
                        )
                    failing = True
                self.connected_since = None
                if self._stop.wait(wait):
                    break
                wait = min(wait * 2, longest)
        finally:
            self.connected_since = None

    def _consume(self) -> None:
        if self._redis_client is not None:
            self._subscribe(self._redis_client)
        else:
            self._consume_kombu()

    def _subscribe(self, make_client: Callable[[], Any]) -> None:
        """Subscribe to the event channels with redis-py until stopped (or the connection
        breaks: the caller reconnects). No key is looked up (see queues_celery_pubsub)."""
        client = make_client()
        try:
            db = int(client.connection_pool.connection_kwargs.get("db") or 0)
            prefix = str(self.settings.transport_options.get("global_keyprefix") or "")
            pattern = event_pattern(self.settings.event_exchange, db, prefix)
            listen(
                client,
                pattern,
                self._published,
                self._stop,
                self._connected,
                DRAIN_SECONDS,
                HEARTBEAT_SECONDS,
            )
        finally:
            client.close()
            client.connection_pool.disconnect()

    def _connected(self) -> None:
        self.connected_since = time.monotonic()
        log.info("celery events connected target=%s", self.outcomes.target_name)

    def _published(self, data: Any) -> None:
        """One message published on the event channels (kombu's envelope)."""
        try:
            body = decode(data)
        except Undecodable as exc:
            self.dropped = f"a task event was dropped: {str(exc)[:200]}"
            return
        self._message(body, None)

    def _consume_kombu(self) -> None:
        """Bind a queue of our own to the event exchange and drain it until stopped (or the
        connection breaks: the caller reconnects)."""
        kombu: Any = importlib.import_module("kombu")  # untyped: used as Any
        settings = self.settings
        with kombu.Connection(
            settings.broker_url,
            connect_timeout=settings.connect_timeout,
            heartbeat=HEARTBEAT_SECONDS,
            transport_options=dict(settings.transport_options),
        ) as connection:
            # one attempt (kombu's connect() waits 2 s and tries again): the loop above retries
            connection.ensure_connection(
                max_retries=0, interval_start=0, interval_step=0, reraise_as_library_errors=False
            )
            queue = event_queue(settings.event_exchange, connection.transport.driver_type)
            with kombu.Consumer(
                connection, queues=[queue], callbacks=[self._message], no_ack=True, accept=["json"]
            ):
                self._connected()
                while not self._stop.is_set():
                    try:
                        connection.drain_events(timeout=DRAIN_SECONDS)
                    except TimeoutError:
                        connection.heartbeat_check()

    def _message(self, body: Any, message: Any) -> None:
        """One event, or a list of them (a worker buffers task events: `task.multi`)."""
        for event in body if isinstance(body, list) else [body]:
            if isinstance(event, Mapping):
                self.on_event(event)

    # -- events -----------------------------------------------------------------------------

    def on_event(self, event: Mapping[str, Any]) -> None:
        """One event as the worker (or producer) sent it; `timestamp` is its Unix time."""
        event_type = str(event.get("type", ""))
        if event_type.startswith("worker-"):
            self.on_worker(event_type, event)
        elif event_type.startswith("task-"):
            self.on_task(event_type, event)

    def on_worker(self, event_type: str, event: Mapping[str, Any]) -> None:
        host = str(event.get("hostname", ""))
        with self._lock:
            if event_type == "worker-offline":
                self._workers.pop(host, None)
            else:
                freq = number(event.get("freq")) or DEFAULT_FREQ
                self._workers[host] = (time.monotonic(), freq)

    def on_task(self, event_type: str, event: Mapping[str, Any]) -> None:
        uuid = str(event.get("uuid", ""))
        stamp = number(event.get("timestamp"))
        status = OUTCOMES.get(event_type)
        with self._lock:
            seen = self._tasks.get(uuid)
            if seen is None:
                seen = self._tasks[uuid] = Seen(self._ended.get(uuid, UNKNOWN_TYPE))
                if len(self._tasks) > TASK_MEMORY:
                    self._tasks.popitem(last=False)
            if event_type in ("task-sent", "task-received"):
                seen.name = str(event.get("name") or seen.name)
                if event_type == "task-sent":
                    seen.sent = stamp
                else:
                    seen.received, seen.eta = stamp, eta_of(event.get("eta"))
            elif event_type == "task-started":
                seen.started = stamp
            requeued = event_type == "task-rejected" and bool(event.get("requeue"))
            if status not in (None, "retry") and not requeued:
                del self._tasks[uuid]  # its last event but maybe one (failed, then rejected)
                self._ended[uuid] = seen.name
                if len(self._ended) > ENDED_MEMORY:
                    self._ended.popitem(last=False)
        name = seen.name
        if event_type == "task-sent" or event_type == "task-received":
            self.outcomes.label(name)  # its series exist at 0 before its first outcome
        elif event_type == "task-started":
            begin = seen.sent if seen.sent is not None else seen.received
            if begin is not None and stamp is not None:
                if seen.eta is not None:
                    begin = max(begin, seen.eta)
                self.outcomes.observe_wait(name, stamp - begin)
        if status is None:
            return
        self.outcomes.count(name, status)
        if status == "success":
            runtime = number(event.get("runtime"))
            if runtime is not None:
                self.outcomes.observe_duration(name, runtime)
        elif status == "failure" and seen.started is not None and stamp is not None:
            self.outcomes.observe_duration(name, stamp - seen.started)
        if status == "retry":  # the next run is sent and received anew
            seen.sent = seen.received = seen.eta = seen.started = None


def number(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) != float("inf") else None


def eta_of(value: Any) -> float | None:
    """A task-received `eta` (ISO 8601, as Celery sends it) as Unix time."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else None


def event_queue(exchange_name: str, driver_type: str) -> Any:
    """The receiver's queue, as Celery's `EventReceiver` declares it: bound with `#` to the
    event exchange, which is a topic exchange (durable, as Celery declares it) except on Redis,
    where Celery makes it fanout (pub/sub). Named for the exporter, exclusive, auto-deleted."""
    kombu: Any = importlib.import_module("kombu")
    exchange_type = "fanout" if driver_type == "redis" else "topic"
    return kombu.Queue(
        f"{exchange_name}.afirgen-exporter.{uuid.uuid4().hex}",
        exchange=kombu.Exchange(exchange_name, type=exchange_type),
        routing_key="#",
        auto_delete=True,
        durable=False,
        exclusive=True,
        message_ttl=QUEUE_TTL,
        expires=QUEUE_EXPIRES,
    )
