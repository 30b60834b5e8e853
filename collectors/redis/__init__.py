"""Redis, through `INFO` (ALL, or all of it that is read) and `LATENCY HISTOGRAM` on Redis >= 7,
asked at scrape time.

The package, one job per module:

- `settings`: the config (`Options`, `Target`) and the redis-py settings it becomes
  (`connection_settings`, shared with the task-queue collector);
- `parsing`: pure parsers of the INFO text and the LATENCY HISTOGRAM reply;
- `fields`: the INFO field -> metric table (adding a field is one line there);
- `commands`: per-command statistics and histograms within a series budget;
- `interval`: keyspace lookups between two scrapes, the exporter's own taken out, restarts
  detected;
- `families`: every family's spec (`SPECS`) and the mapping from parsed replies to families;
- `connection`: the collector's own connection, bounded by the scrape deadline and a reply
  budget, and droppable from another thread;
- `collector`: the collector and its failure reasons (`build`, `from_client`).
"""

from collectors.redis.collector import RedisCollector, build, from_client
from collectors.redis.commands import (
    OTHER,
    CommandStats,
    command_stats,
    fold_commands,
    fold_histograms,
)
from collectors.redis.families import SPECS, info_families
from collectors.redis.fields import INFO_FIELDS, LABEL, InfoField
from collectors.redis.interval import Accounting, LookupInterval, Lookups, raw_lookups
from collectors.redis.parsing import (
    CommandLatency,
    parse_fields,
    parse_info,
    parse_latency_histogram,
)
from collectors.redis.settings import Options, Target, check_redis_url, connection_settings

__all__ = [
    "INFO_FIELDS",
    "LABEL",
    "Accounting",
    "OTHER",
    "SPECS",
    "CommandLatency",
    "CommandStats",
    "InfoField",
    "LookupInterval",
    "Lookups",
    "Options",
    "RedisCollector",
    "Target",
    "build",
    "check_redis_url",
    "command_stats",
    "connection_settings",
    "fold_commands",
    "fold_histograms",
    "from_client",
    "info_families",
    "parse_fields",
    "parse_info",
    "parse_latency_histogram",
    "raw_lookups",
]
