"""Redis as the cache: reachability, hit ratio, memory, evictions, rejected connections."""

from __future__ import annotations

from alerts.rules import Alert, Area, Record, selector
from alerts.thresholds import (
    CACHE_DOWN_FOR,
    CACHE_EVICTIONS_FOR,
    CACHE_EVICTIONS_PER_SECOND,
    CACHE_HIT_RATIO_FOR,
    CACHE_HIT_RATIO_MIN,
    CACHE_MEMORY_FOR,
    CACHE_MEMORY_RATIO,
    CACHE_MIN_LOOKUPS_PER_SECOND,
    CACHE_REJECTED_FOR,
)

#: The application's key lookups: the exporter's own (task-queue reads on the same server)
#: are already left out of cache_operations_total, so an idle application has none.
LOOKUP = 'type="lookup"'
LOOKUP_HIT = 'type="lookup", result="hit"'

AREA = Area(
    "cache",
    records=(
        Record(
            "job_cache:cache_lookups:rate5m",
            f"sum by (job, instance, cache) (rate(cache_operations_total{selector(LOOKUP)}[5m]))",
        ),
        Record(
            "job_cache:cache_hit:ratio_rate5m",
            "sum by (job, instance, cache) "
            f"(rate(cache_operations_total{selector(LOOKUP_HIT)}[5m]))\n"
            "/ (job_cache:cache_lookups:rate5m > 0)",
        ),
        Record(
            "job_cache:cache_memory_usage:ratio",
            f"cache_memory_usage_bytes{selector()}\n/ on (job, instance, cache)\n"
            f"(redis_memory_max_bytes{selector()} > 0)",
        ),
    ),
    alerts=(
        Alert(
            "AfirgenCacheDown",
            f"cache_up{selector()} == 0",
            CACHE_DOWN_FOR,
            "critical",
            "A Redis cache cannot be reached.",
            "Redis {{ $labels.cache }} (exporter {{ $labels.instance }}) has not answered for "
            f"{CACHE_DOWN_FOR}.",
        ),
        Alert(
            "AfirgenCacheHitRatioLow",
            f"job_cache:cache_hit:ratio_rate5m < {CACHE_HIT_RATIO_MIN}\n"
            "and on (job, instance, cache)\n"
            f"job_cache:cache_lookups:rate5m > {CACHE_MIN_LOOKUPS_PER_SECOND}",
            CACHE_HIT_RATIO_FOR,
            "warning",
            "The cache hit ratio is low.",
            "Only {{ $value | humanizePercentage }} of key lookups on Redis "
            "{{ $labels.cache }} hit.",
        ),
        Alert(
            "AfirgenCacheMemoryNearMax",
            f"job_cache:cache_memory_usage:ratio > {CACHE_MEMORY_RATIO}",
            CACHE_MEMORY_FOR,
            "warning",
            "Redis memory is close to maxmemory.",
            "Redis {{ $labels.cache }} uses {{ $value | humanizePercentage }} of its maxmemory.",
        ),
        Alert(
            "AfirgenCacheEvicting",
            f"rate(cache_evictions_total{selector()}[5m]) > {CACHE_EVICTIONS_PER_SECOND}",
            CACHE_EVICTIONS_FOR,
            "warning",
            "Redis keeps evicting keys.",
            "Redis {{ $labels.cache }} evicts {{ $value | humanize }} keys per second.",
        ),
        Alert(
            "AfirgenCacheRejectedConnections",
            f"increase(redis_rejected_connections_total{selector()}[5m]) > 0",
            CACHE_REJECTED_FOR,
            "warning",
            "Redis rejects connections.",
            "Redis {{ $labels.cache }} rejected {{ $value | humanize }} connections in the "
            "last 5 minutes (maxclients reached).",
        ),
    ),
)
