"""What the previous scrapes of one Redis target built from an input that came back unchanged.

Most of INFO's per-command lines and LATENCY HISTOGRAM's entries are the same from one scrape
to the next (a command nobody called since), and the samples made from them would be too.
`Reuse` keeps, per key (a command, an INFO field), the input last seen with what was made from
it; a scrape whose input is equal takes that instead of parsing and building again. Nothing is
kept that the current reply does not repeat exactly, so what is served is this scrape's data:
a source that went down serves nothing from here (the collector never reaches these steps).
Samples are immutable tuples whose label dicts no consumer changes, so sharing them between
scrapes is safe. tests/test_redis_fast_paths.py checks every step equal with and without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client.samples import Sample

if TYPE_CHECKING:
    from collectors.redis.commands import CommandStats
    from collectors.redis.parsing import CommandLatency

#: One command's error (Redis >= 6.2, else None), calls and seconds samples.
CommandSamples = tuple[Sample | None, Sample, Sample]
#: One db's keys, keys expiring and average TTL samples.
DbSamples = tuple[Sample, Sample, Sample]

#: Entries per table before it is emptied: command names are a bounded set (the server's
#: command table), this only keeps a pathological server from growing them without end.
LIMIT = 4096


class Reuse:
    """One target's tables of input -> what was made from it, one table per step.

    Each table maps a key to `(input, made)`; a step compares the input (==) before taking
    `made`. Entries are replaced, never mutated, so a run past its deadline that still writes
    here writes only entries as right as the new run's.
    """

    __slots__ = ("cmdstats", "histograms", "commands", "counts", "buckets", "dbs")

    def __init__(self) -> None:
        #: `cmdstat_<command>` -> (its INFO value, CommandStats or None when skipped)
        self.cmdstats: dict[str, tuple[str, CommandStats | None]] = {}
        #: LATENCY HISTOGRAM command name as sent -> (its entry, (command, CommandLatency|None))
        self.histograms: dict[Any, tuple[Any, tuple[str, CommandLatency | None]]] = {}
        #: command -> ((cache, stats, errors?), its per-command samples)
        self.commands: dict[str, tuple[Any, CommandSamples]] = {}
        #: command -> (its CommandLatency, number of bounds, its counts filled onto them)
        self.counts: dict[str, tuple[CommandLatency, int, list[int]]] = {}
        #: command or `other` -> ((cache, calls, counts, seconds), its histogram samples)
        self.buckets: dict[str, tuple[Any, list[Sample]]] = {}
        #: `db<N>` -> ((cache, its INFO value), its three samples, or None when skipped)
        self.dbs: dict[str, tuple[tuple[str, str], DbSamples | None]] = {}

    def trim(self) -> None:
        """Empty any table grown past `LIMIT` (called once per scrape)."""
        tables = (
            self.cmdstats,
            self.histograms,
            self.commands,
            self.counts,
            self.buckets,
            self.dbs,
        )
        for table in tables:
            if len(table) > LIMIT:
                table.clear()
