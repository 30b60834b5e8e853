"""Keyspace lookups between two scrapes, the exporter's own taken out ("never measure
yourself"), and server restarts detected so no rate is computed across one.

Redis counts `keyspace_hits`/`keyspace_misses` server-wide since it started. The exporter's
task-queue reads on the same server are recorded in `collectors.own_lookups`; this module
subtracts them from the server's counts (the application's lookups, as far as this exporter
knows) and computes the hit rate over the interval since the previous scrape.

A restart is a changed `run_id`, an `uptime_in_seconds` that went down, or counters that went
down (`CONFIG RESETSTAT`): that scrape has no hit-rate sample, and the corrected counters
start again from the server's. Neither has the first scrape (there is no interval yet), nor a
scrape whose interval saw no lookup but the exporter's own (an idle application).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from collectors.own_lookups import OwnLookups
from collectors.redis.parsing import number


@dataclass(frozen=True)
class Lookups:
    """Keyspace hits and misses (cumulative)."""

    hits: float
    misses: float


@dataclass(frozen=True)
class Accounting:
    """What one scrape reports about lookups."""

    #: The server's counts minus the exporter's own (since the server started, as far as this
    #: exporter process saw it): `cache_operations_total{type="lookup"}`.
    app: Lookups
    #: The exporter's own recorded lookups on this server since the process started.
    own: Lookups
    #: Percent of the application's lookups that hit over the interval; None: no sample.
    rate: float | None


@dataclass(frozen=True)
class _Scrape:
    run_id: str
    uptime: float
    raw: Lookups
    own: Lookups
    own_base: Lookups  # the own lookups already made when this server lifetime was first seen
    exact: Lookups  # raw minus own since own_base: its differences are exact, it may be < 0
    offset: Lookups  # what makes `exact` a counter (never below 0) for this server lifetime
    app: Lookups  # what was reported


_LOOKUPS = ("keyspace_hits", "keyspace_misses")


def raw_lookups(info: Mapping[str, str], bad: list[str] | None = None) -> Lookups | None:
    """Keyspace hits and misses (0 when the server does not report them); None when either
    is not a counter's value (named in `bad`)."""
    hits, misses = (number(info.get(key) or "0", counter=True) for key in _LOOKUPS)
    if hits is None or misses is None:
        if bad is not None:
            bad.extend(key for key, n in zip(_LOOKUPS, (hits, misses), strict=True) if n is None)
        return None
    return Lookups(hits, misses)


class LookupInterval:
    """The previous scrape of one Redis target, to account the next one against."""

    def __init__(self) -> None:
        self._previous: _Scrape | None = None
        self._lock = threading.Lock()  # a run past its deadline may still be accounting

    def account(
        self, info: Mapping[str, str], own_reading: OwnLookups, bad: list[str] | None = None
    ) -> Accounting | None:
        """This scrape's lookups; None when INFO's counters are not numbers (nothing kept)."""
        with self._lock:
            return self._account(info, own_reading, bad)

    def _account(
        self, info: Mapping[str, str], own_reading: OwnLookups, bad: list[str] | None
    ) -> Accounting | None:
        raw = raw_lookups(info, bad)
        if raw is None:
            return None
        own = Lookups(own_reading.hits, own_reading.misses)
        run_id = info.get("run_id", "")
        uptime = number(info.get("uptime_in_seconds") or "0", counter=False) or 0.0
        previous = self._previous
        restarted = previous is None or (
            run_id != previous.run_id
            or uptime < previous.uptime
            or raw.hits < previous.raw.hits
            or raw.misses < previous.raw.misses
        )
        if previous is None:
            own_base = Lookups(0, 0)  # the ledger started with this process
        elif restarted:
            # the own lookups of the last interval may fall either side of the restart: all are
            # taken from the new lifetime (an estimate; differences from here on are exact)
            own_base = previous.own
        else:
            own_base = previous.own_base
        exact = Lookups(
            raw.hits - (own.hits - own_base.hits), raw.misses - (own.misses - own_base.misses)
        )
        rate = None
        if previous is None or restarted:
            offset = Lookups(max(0.0, -exact.hits), max(0.0, -exact.misses))
            app = _plus(exact, offset)
        else:
            offset = previous.offset
            # a lookup counted a scrape late (a batch still in flight at INFO) must not make
            # the counter go back: it is held until the count catches up
            shifted = _plus(exact, offset)
            app = Lookups(
                max(shifted.hits, previous.app.hits), max(shifted.misses, previous.app.misses)
            )
            hits, misses = app.hits - previous.app.hits, app.misses - previous.app.misses
            if hits + misses > 0:
                rate = 100.0 * hits / (hits + misses)
        self._previous = _Scrape(run_id, uptime, raw, own, own_base, exact, offset, app)
        return Accounting(app, own, rate)


def _plus(a: Lookups, b: Lookups) -> Lookups:
    return Lookups(a.hits + b.hits, a.misses + b.misses)
