"""Every tunable number of the rules, typed, each with the reason for its value.

Durations go into `for` and range windows, ratios and levels into comparisons; the dashboards
read the same objects to colour a stat where its alert fires. A value is a number or a
duration from the start, never a string to parse.
"""

from __future__ import annotations

from dataclasses import dataclass

_UNITS = (("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True)
class Duration:
    """A Prometheus duration (`for`, a range window), written as promtool prints it: 5m, 1h."""

    seconds: int
    why: str

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"a duration must be positive, not {self.seconds}s")

    def __str__(self) -> str:
        for suffix, size in _UNITS:
            if self.seconds % size == 0:
                return f"{self.seconds // size}{suffix}"
        raise AssertionError("unreachable: every whole number of seconds divides by 1")


def minutes(count: int, why: str) -> Duration:
    return Duration(count * 60, why)


def hours(count: int, why: str) -> Duration:
    return Duration(count * 3600, why)


@dataclass(frozen=True)
class Ratio:
    """A share from 0 to 1: a threshold on a ratio recording rule, or a quantile."""

    value: float
    why: str

    def __post_init__(self) -> None:
        if not 0 <= self.value <= 1:
            raise ValueError(f"a ratio is between 0 and 1, not {self.value}")
        object.__setattr__(self, "value", float(self.value))

    def __str__(self) -> str:
        return f"{self.value:g}"


@dataclass(frozen=True)
class Level:
    """A number in the unit of the metric it is compared with (seconds, tasks, percent)."""

    value: float
    unit: str
    why: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(self.value))

    def __str__(self) -> str:
        return f"{self.value:g}"


Threshold = Duration | Ratio | Level


def table() -> dict[str, Threshold]:
    """Every threshold of this module by name (for the tests and the docs)."""
    return {
        name: value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, Duration | Ratio | Level)
    }


# --- exporter ----------------------------------------------------------------------------------
EXPORTER_DOWN_FOR = minutes(
    5, "a restart or a redeploy takes well under a minute; five missed minutes is not one"
)
COLLECTOR_FAILING_FOR = minutes(
    10, "one slow scrape is a timeout, not an outage; the source's own alert pages sooner"
)
RELOAD_FAILED_FOR = minutes(
    5, "the old config keeps serving, so it is not urgent, but the edit did not land"
)
SERIES_DROPPED_FOR = hours(
    1, "a label budget cut is a capacity note: it matters only when it lasts"
)

# --- database ----------------------------------------------------------------------------------
DATABASE_DOWN_FOR = minutes(
    2, "the app fails requests as soon as the database is gone; allow a failover"
)
POOL_SATURATION_RATIO = Ratio(
    0.9, "above 90% of pool capacity checked out, requests start waiting for connections"
)
POOL_SATURATION_FOR = minutes(5, "bursts that fill the pool briefly are normal")
CONNECTIONS_NEAR_MAX_RATIO = Ratio(
    0.8, "past 80% of max_connections a deploy (twice the pools) or a replica reconnect fails"
)
CONNECTIONS_NEAR_MAX_FOR = minutes(5, "connection storms settle within minutes")
DEADLOCK_WINDOW = minutes(
    10, "deadlocks are rare events: any in the last ten minutes is worth a look"
)
DEADLOCK_FOR = minutes(1, "one evaluation to let the counter show in both samples")
LONG_TRANSACTION_SECONDS = Level(
    600, "seconds", "a transaction open ten minutes holds locks and blocks vacuum; app ones last ms"
)
LONG_TRANSACTION_FOR = minutes(2, "a nightly batch may get close; it must not stay")

# --- cache -------------------------------------------------------------------------------------
CACHE_DOWN_FOR = minutes(
    1, "the app falls back to the database without its cache: that load spike hurts fast"
)
CACHE_HIT_RATIO_MIN = Ratio(
    0.8, "below 80% hits the cache no longer takes most of the read load off the database"
)
CACHE_MIN_LOOKUPS_PER_SECOND = Level(
    1,
    "lookups per second",
    "with less than one lookup a second the ratio is noise (idle nights, fresh start)",
)
CACHE_HIT_RATIO_FOR = minutes(15, "the ratio dips after every deploy's cold start")
CACHE_MEMORY_RATIO = Ratio(0.9, "past 90% of maxmemory Redis starts evicting or refusing writes")
CACHE_MEMORY_FOR = minutes(10, "memory moves with load; a plateau near max is the sign")
CACHE_EVICTIONS_PER_SECOND = Level(
    1,
    "evictions per second",
    "an LRU cache evicts now and then by design; a steady stream means it is too small",
)
CACHE_EVICTIONS_FOR = minutes(15, "only a sustained stream, not one burst")
CACHE_REJECTED_FOR = minutes(
    1, "every rejected connection is an app request that failed (maxclients reached)"
)

# --- model servers -----------------------------------------------------------------------------
MODEL_SERVER_DOWN_FOR = minutes(
    2, "model servers restart to load a model; two minutes covers a normal restart"
)
MODEL_NOT_READY_FOR = minutes(
    5, "loading a large model takes minutes; a server live but not ready longer is stuck"
)
MODEL_LATENCY_QUANTILE = Ratio(0.95, "p95: what most users wait, not the outliers")
MODEL_PROBE_SECONDS = Level(
    2, "seconds", "a health probe answering slower than 2 s means the server is overloaded"
)
MODEL_PROBE_FOR = minutes(10, "one slow batch is not a trend")
MODEL_INFERENCE_SECONDS = Level(
    20,
    "seconds",
    "a generation of a few hundred tokens takes seconds; a p95 past 20 s means requests queue "
    "or the engine is overloaded (set it to your latency objective)",
)
MODEL_INFERENCE_FOR = minutes(10, "a burst of long prompts passes within minutes")
MODEL_ERROR_RATIO = Ratio(
    0.05, "one inference request in twenty failing is an outage for the users who hit it"
)
MODEL_ERROR_FOR = minutes(10, "a few failed requests while a model reloads are not an outage")
MODEL_WAITING_MIN = Level(
    10, "requests", "a few waiting requests are normal batching; ten and climbing is a backlog"
)
MODEL_WAITING_FOR = minutes(15, "a queue that grows for a quarter of an hour does not drain")
MODEL_KV_CACHE_RATIO = Ratio(
    0.95, "a KV cache past 95% makes vLLM preempt running requests and recompute them"
)
MODEL_KV_CACHE_FOR = minutes(10, "the cache fills in bursts; full for ten minutes is capacity")

# --- task queue --------------------------------------------------------------------------------
QUEUE_DOWN_FOR = minutes(2, "no broker: nothing is enqueued or processed")
BACKLOG_MIN_TASKS = Level(
    100, "tasks", "a few waiting tasks are normal between worker polls; a hundred is a backlog"
)
BACKLOG_GROWTH_WINDOW = minutes(15, "growth over a quarter of an hour is a trend, not a burst")
BACKLOG_FOR = minutes(15, "bursts enqueue a lot at once and drain within minutes")
OLDEST_TASK_SECONDS = Level(
    900, "seconds", "a task waiting fifteen minutes is late for anything a user is waiting on"
)
OLDEST_TASK_FOR = minutes(5, "workers pick tasks within seconds when they keep up")
NO_WORKERS_FOR = minutes(
    5, "workers restart on deploy; five minutes without one while tasks wait is an outage"
)
TASK_FAILURE_RATIO = Ratio(
    0.1, "one task in ten failing is beyond retries and flaky inputs: something is broken"
)
TASK_FAILURE_FOR = minutes(15, "a short burst of bad inputs fails a few tasks")
TASK_WAIT_QUANTILE = Ratio(0.95, "p95: what most tasks wait, not one unlucky task")
TASK_WAIT_SECONDS = Level(
    300, "seconds", "tasks waiting five minutes for a worker means the workers do not keep up"
)
TASK_WAIT_FOR = minutes(15, "a burst of enqueued work drains within minutes when workers keep up")
TASK_EVENTS_DOWN_FOR = minutes(
    5, "the receiver reconnects within seconds; five minutes without events loses outcomes"
)

# --- host --------------------------------------------------------------------------------------
HOST_CPU_RATIO = Ratio(
    0.9, "at 90% CPU over 15 minutes request latency climbs and the scrape itself slows"
)
HOST_CPU_FOR = minutes(15, "model inference and batch jobs peak for minutes")
HOST_MEMORY_PERCENT = Level(
    90, "percent", "past 90% the page cache is gone and the OOM killer is near"
)
HOST_MEMORY_FOR = minutes(15, "memory peaks during model loads settle within minutes")
HOST_DISK_FREE_RATIO = Ratio(
    0.1, "under 10% free, databases and logs fill the rest faster than people react"
)
HOST_DISK_FOR = minutes(15, "log rotation frees space again within minutes")

# --- API (embedded mode) -----------------------------------------------------------------------
API_ERROR_RATIO = Ratio(
    0.05, "more than one request in twenty answering 5xx is visible to every user"
)
API_ERROR_FOR = minutes(10, "a deploy may fail a handful of requests")
API_LATENCY_SECONDS = Level(
    1, "seconds", "p95 over a second: the app's interactive pages feel broken"
)
API_LATENCY_FOR = minutes(10, "one slow minute is a burst, ten a trend")
