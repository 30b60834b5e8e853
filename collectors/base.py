"""The frame every collector is written in: deadlines, one collection that never raises,
bounded failure reasons and label budgets.

A collector subclasses `SourceCollector` and implements `fetch(ctx)`, which may raise. `run()`
buffers everything `fetch` yields and returns it only when the whole collection succeeded;
otherwise it returns the collector's `down_families()` (its `*_up` gauge at 0) and a bounded
reason. `collect()` is the plain prometheus_client entry point, so a collector can also be
registered in any `CollectorRegistry`.
"""

from __future__ import annotations

import abc
import errno
import logging
import ssl
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from collectors.secret import redact

log = logging.getLogger("afirgen_exporter.collector")

#: Every reason a collection can fail with. Labels and the landing page only ever show these.
REASONS = (
    "timeout",
    "refused",
    "unreachable",
    "connection",
    "tls",
    "auth",
    "bad_response",
    "error",
)

DEFAULT_TIMEOUT_SECONDS = 10.0

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class Deadline:
    """A point on the monotonic clock by which a scrape must have answered."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def timeout(self, cap: float | None = None, floor: float = 0.001) -> float:
        """Seconds a single I/O call may take: what is left, at most `cap`, never zero."""
        left = self.remaining()
        if cap is not None:
            left = min(left, cap)
        return max(left, floor)

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining():.3f}s)"


class SourceDown(Exception):
    """Raised by a collector that knows why its source is unusable; carries a bounded reason."""

    def __init__(self, reason: str, message: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        super().__init__(message or reason)
        self.reason = reason


class SlowValues:
    """What a collector reads on an interval of its own instead of every scrape (server
    settings, versions, sizes): each part's value and when it was read.

    Owned by one collector and kept across its scrapes; a failed collection clears it, so a
    value read before the source went down is never served again as if it were current.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the dict only: never held while reading
        self._values: dict[str, tuple[Any, float, Hashable]] = {}

    def get(
        self, part: str, seconds: float, read: Callable[[], T], key: Hashable = None
    ) -> tuple[T, float]:
        """`part`'s value, read again when older than `seconds` or read under another `key`
        (a server's start time: a restart changes its settings), and its age in seconds."""
        now = time.monotonic()
        with self._lock:
            kept = self._values.get(part)
        if kept is not None and now - kept[1] < seconds and kept[2] == key:
            return kept[0], now - kept[1]
        value = read()
        if value is not None:  # None: nothing read this time (a part skipped), ask again
            with self._lock:
                self._values[part] = (value, now, key)
        return value, 0.0

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


@dataclass
class ScrapeContext:
    """What one collection may use and report besides its families."""

    deadline: Deadline
    series_dropped: int = 0
    notes: list[str] = field(default_factory=list)
    #: the collector's values read on their own interval (a fresh store when none is given)
    slow: SlowValues = field(default_factory=SlowValues)
    #: part -> age in seconds of the slow values this collection served
    ages: dict[str, float] = field(default_factory=dict)

    def every(self, part: str, seconds: float, read: Callable[[], T], key: Hashable = None) -> T:
        """`read()`, called at most once every `seconds` (values that barely change, and
        whose query costs the source more than the rest of the scrape); the age of what is
        served is reported as `afirgen_exporter_cached_age_seconds{part}`. A read that
        returns None keeps nothing: the next scrape reads again. A value read under another
        `key` is read again at once."""
        value, age = self.slow.get(part, seconds, read, key)
        if value is not None:
            self.ages[part] = age
        return value

    def keep_top(self, weights: Mapping[K, float], limit: int) -> frozenset[K]:
        """The `limit` keys with the largest weight; the others are counted as dropped.

        Callers fold values of keys that are not kept under an `other` label value, so totals
        stay right while the number of series stays bounded.
        """
        if limit <= 0 or len(weights) <= limit:
            return frozenset(weights)
        ranked = sorted(weights.items(), key=lambda kv: (-kv[1], str(kv[0])))
        self.series_dropped += len(weights) - limit
        return frozenset(key for key, _ in ranked[:limit])

    def note(self, text: str) -> None:
        """A short operator-facing remark for the landing page (never a secret or raw error)."""
        if text not in self.notes:
            self.notes.append(text)


@dataclass(frozen=True)
class CollectionResult:
    families: Sequence[Metric]
    success: bool
    duration_seconds: float
    reason: str = ""
    series_dropped: int = 0
    notes: tuple[str, ...] = ()
    #: Why it failed, redacted and short: for the log line of a state change, never a label.
    detail: str = ""
    #: (part, age in seconds) of the values served from the collector's slow store
    ages: tuple[tuple[str, float], ...] = ()
    #: The families already encoded, per exposition format: a scrape encodes each unit's
    #: share as soon as it is collected, while slower sources are still being waited for
    #: (exporter.scrape). Owned by the scrape engine; lives and goes with this result.
    encodings: dict[Hashable, Any] = field(default_factory=dict, compare=False, repr=False)


def classify_error(exc: BaseException) -> str:
    """Map an exception (or what it wraps) to one of `REASONS`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SourceDown):
            return current.reason
        if isinstance(current, TimeoutError):
            return "timeout"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return "tls"
        if isinstance(current, OSError) and current.errno in (
            errno.EHOSTUNREACH,
            errno.ENETUNREACH,
            errno.EADDRNOTAVAIL,
        ):
            return "unreachable"
        if isinstance(current, ConnectionError):
            return "connection"
        name = type(current).__name__.lower()
        if "timeout" in name:
            return "timeout"
        if "auth" in name or "permission" in name or "access" in name:
            return "auth"
        current = current.__cause__ or current.__context__
    return "error"


class SourceCollector(abc.ABC):
    """One source (a database, a Redis, the host...) asked at scrape time.

    `collector` names the collector in flags, `collect[]` and the `collector` label; `name` is the
    configured target name (the `target` label of the self-metrics).
    """

    collector: ClassVar[str] = "source"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # 0.1 called this attribute `kind`: an old subclass would otherwise be named "source"
        # without a word, and its families would merge with every other such collector's
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__ and "collector" not in cls.__dict__:
            raise TypeError(f"{cls.__name__}: set `collector = ...` (0.1 called it `kind`)")

    def __init__(self, name: str, *, secrets: Iterable[str] = ()) -> None:
        self.name = name
        self._secrets = tuple(s for s in secrets if s)
        self.default_timeout = DEFAULT_TIMEOUT_SECONDS
        self._was_up: bool | None = None  # the last outcome reported, for state-change lines
        self._state_lock = threading.Lock()
        self._slow = SlowValues()

    def describe(self) -> list[Metric]:
        """No families announced up front: describing must never touch the network."""
        return []

    @abc.abstractmethod
    def fetch(self, ctx: ScrapeContext) -> Iterable[Metric]:
        """Ask the source and yield families. May raise; `run` turns that into a down report."""

    def down_families(self) -> Sequence[Metric]:
        """Families served when the source could not be read (its `*_up` gauge at 0). No I/O."""
        return ()

    def classify(self, exc: BaseException) -> str:
        """The bounded reason for a failure; collectors may know their library's exceptions."""
        return classify_error(exc)

    def close(self) -> None:  # noqa: B027 - most collectors have nothing to close
        """Release connections (on reload or shutdown). Collectors with clients override it.

        Must not wait on a lock that a stuck `fetch` may hold: the engine gives every close
        about a second (in a thread of its own), then exits without it.
        """

    def abandon(self) -> None:  # noqa: B027 - collectors without connections have nothing to drop
        """A run of this collector overran its deadline and the engine stopped waiting for it.

        Called once per abandoned run, in a worker thread, before the collector's next run
        starts (the engine orders the two). The stuck run may still be blocked in I/O and its
        late result is discarded, so a collector that holds a connection drops or marks it here
        (without blocking and without a lock the stuck run holds): the next run must dial
        afresh, and the stuck one fails on its own by its I/O timeouts. The engine starts no
        new run of a collector while two of its abandoned runs are still going.
        """

    def run(self, deadline: Deadline, *, report: bool = True) -> CollectionResult:
        """One whole collection: all families on success, the down families otherwise.

        With `report`, a change of state (down, or back up) is logged once; the scrape engine
        passes False and reports the outcomes it serves itself (a late result it discarded
        never flips the state).
        """
        result = self._collection(deadline)
        if report:
            self.report(result)
        return result

    def _collection(self, deadline: Deadline) -> CollectionResult:
        ctx = ScrapeContext(deadline, slow=self._slow)
        started = time.perf_counter()
        try:
            families = list(self.fetch(ctx))
        except Exception as exc:  # noqa: BLE001 - a collector must never break the scrape
            self._slow.clear()  # read again once the source answers: it may have changed
            duration = time.perf_counter() - started
            reason = self.classify(exc)
            if reason not in REASONS:
                reason = "error"
            return CollectionResult(
                families=list(self.down_families()),
                success=False,
                duration_seconds=duration,
                reason=reason,
                notes=tuple(ctx.notes),
                detail=self.failure_detail(exc),
            )
        return CollectionResult(
            families=families,
            success=True,
            duration_seconds=time.perf_counter() - started,
            series_dropped=ctx.series_dropped,
            notes=tuple(ctx.notes),
            ages=tuple(ctx.ages.items()),
        )

    def failure_detail(self, exc: BaseException) -> str:
        """The exception as one short line with every known secret and URL password masked
        (drivers add lines: SQLAlchemy's "Is the server running...", "(Background on...)")."""
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        return redact(text, self._secrets)[:300]

    def log_failure(self, reason: str, exc: BaseException) -> None:
        """A warning for a failure outside a collection (closing, the abandon hook)."""
        log.warning(
            "collector failed collector=%s target=%s reason=%s detail=%s",
            self.collector,
            self.name,
            reason,
            self.failure_detail(exc),
        )

    def carry_state(self, previous: SourceCollector) -> None:
        """Continue the logged state of `previous`, the collector this one replaces at a reload
        with the same settings: a target still down logs no second "target down" line."""
        if previous is self:
            return
        with previous._state_lock:
            was_up = previous._was_up
        with self._state_lock:
            self._was_up = was_up

    def report(self, result: CollectionResult) -> None:
        """Log an outcome served for this target: one line per change of state, not per scrape.

        Going down (or being down at the first scrape) is a warning with the bounded reason and
        the redacted detail; coming back up is one info line; failures while already down are
        debug lines.
        """
        with self._state_lock:
            was_up, self._was_up = self._was_up, result.success
        if result.success:
            if was_up is False:
                log.info(
                    "target up: collected again collector=%s target=%s", self.collector, self.name
                )
            return
        line = "collection failed collector=%s target=%s reason=%s detail=%s"
        args = (self.collector, self.name, result.reason, result.detail)
        if was_up is False:
            log.debug(line, *args)
        else:
            log.warning("target down: " + line, *args)

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's entry point: a whole collection within the default timeout."""
        yield from self.run(Deadline.after(self.default_timeout)).families


def up_family(
    name: str, documentation: str, labels: Sequence[str], values: Sequence[str], up: bool
) -> GaugeMetricFamily:
    """A `*_up` gauge with a single sample: the shape every collector's down report takes."""
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(values), 1.0 if up else 0.0)
    return family
