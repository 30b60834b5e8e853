"""What every `task_queues:` entry has, and the connections a collector keeps for it.

Each backend module defines one target type, a frozen dataclass subclassing `QueueTarget` with
only its own options (the config schema then refuses another backend's option as an unknown key),
and implements `read()`: ask the broker and fill a `QueueReading`. `collectors.task_queue`
holds the table of backends (`KINDS`) and shapes the readings into families.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from collectors.base import ScrapeContext
from collectors.checks import check_limit, check_positive
from collectors.queues_model import QueueReading
from collectors.queues_outcomes import Outcomes, OutcomeTracker
from collectors.secret import Secret, url_password

#: Cap on one connection attempt or reply when the target sets no `timeout_seconds`.
DEFAULT_CAP_SECONDS = 10.0

T = TypeVar("T")
S = TypeVar("S", bound=Sized)


def check_url(value: str) -> str:
    """A URL with a scheme; never echoes the value (it may hold a password)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if not parts.scheme:
        raise ValueError("not a valid URL (no scheme, e.g. redis://127.0.0.1:6379/0)")
    return value


def check_not_empty(value: S) -> S:
    if not len(value):
        raise ValueError("must not be empty")
    return value


@dataclass(frozen=True)
class QueueTarget(abc.ABC):
    """The keys of every backend. Subclasses add theirs (keyword-only) and set `kind`."""

    name: str
    url: str = field(metadata={"check": check_url})
    password: Secret | None = None
    password_file: str | None = field(default=None, metadata={"secret_file_for": "password"})
    #: Time limit for this target inside the scrape deadline; also caps connection attempts.
    timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    #: Label budgets: at most this many queues / task types, the rest summed under `other`.
    queue_limit: int = field(default=100, metadata={"check": check_limit})
    type_limit: int = field(default=50, metadata={"check": check_limit})
    #: The `kind:` key; it chose this type, so it is not an argument.
    kind: str = field(default="", init=False)

    #: URL schemes this backend reads (empty: any, checked by the backend itself).
    url_schemes: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for problem in self.problems():
            raise ValueError(problem)

    def problems(self) -> Iterator[str]:
        """Cross-field problems, each naming its key; values are never echoed."""
        scheme = urlsplit(self.url).scheme
        if self.url_schemes and scheme not in self.url_schemes:
            wanted = "/".join(sorted(self.url_schemes))
            yield f"url: kind {self.kind} needs a {wanted} URL, got {scheme}://"
        if self.password and url_password(self.url):
            yield "password: the url already has a password; set it in one place"

    @property
    def kind_label(self) -> str:
        """The `kind` label of `background_tasks_up` (Celery adds its transport)."""
        return self.kind

    @property
    def cap(self) -> float:
        return self.timeout_seconds or DEFAULT_CAP_SECONDS

    @property
    def secret(self) -> str | None:
        return self.password.reveal() if self.password else None

    def secrets(self) -> list[str]:
        """Values to mask in log lines: the password, wherever it was given."""
        return [self.secret or "", url_password(self.url) or ""]

    def outcome_tracker(
        self, outcomes: Callable[[tuple[str, ...]], Outcomes]
    ) -> OutcomeTracker | None:
        """What follows this target's task outcomes into `outcomes(its statuses)`; None where
        the exporter counts none for this backend. No I/O: a tracker dials when first read."""
        return None

    @abc.abstractmethod
    def read(self, clients: Clients, ctx: ScrapeContext, reading: QueueReading, now: float) -> None:
        """Ask the broker (through `clients`) and fill `reading`. May raise."""


class Clients:
    """The connections of one collector, made on first use and kept between scrapes.

    Injected ones (embedded mode: the application's Redis client or SQLAlchemy engine, under
    the names `redis` and `sql`) are used as they are and never closed here. `busy` and
    `retired` let a run that overran its deadline be abandoned: the collector starts afresh
    with new clients, and whichever of the stuck run and `retire()` comes last closes these.
    """

    def __init__(self, injected: Mapping[str, Any]) -> None:
        self._clients: dict[str, Any] = dict(injected)
        self._closers: dict[str, Callable[[Any], None]] = {}
        self.busy = False
        self.retired = False

    def get(self, name: str, make: Callable[[], T], close: Callable[[T], None]) -> T:
        if name not in self._clients:
            self._clients[name] = make()
            self._closers[name] = close
        client: T = self._clients[name]
        return client

    def started(self) -> None:
        """A run is using these clients."""
        self.busy = True

    def finished(self) -> None:
        """The run using these clients ended."""
        self.busy = False
        if self.retired:
            self.close()

    def retire(self) -> None:
        """No new run will use these clients; closed now if no run is using them."""
        self.retired = True
        if not self.busy:
            self.close()

    def close(self) -> None:
        """Close what was made here (safe to call twice, from two threads)."""
        while self._closers:
            try:
                name, close = self._closers.popitem()
            except KeyError:  # emptied by the other thread meanwhile
                return
            try:
                close(self._clients.pop(name))
            except Exception:  # noqa: BLE001 - a broken connection is dropped all the same
                pass
