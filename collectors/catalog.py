"""The table of collectors: the one place flags, the landing page and the README table come from.

Each entry names a module that provides, by convention:

- `build(options, target) -> SourceCollector`: makes a collector without touching the network.
  `options` is the module's `Options` instance (or None); `target` is one entry of the config
  section the collector reads (None for host-level collectors).
- `Options` (optional): a frozen dataclass of settings under `collectors.<name>:` in the config.
- `Target` (for collectors with a `section`): a frozen dataclass for one list entry under that
  top-level key; it must have a `name` field.

Modules are imported only when a config uses them, so an exporter that watches only the host
does not pay for SQLAlchemy, redis-py or httpx.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class CollectorSpec:
    name: str
    module: str
    default_enabled: bool
    #: The text, or a function that builds it from the collector's own tables (called only
    #: where the summary is shown: importing the catalog imports no collector).
    about: str | Callable[[], str]
    section: str | None = None

    @property
    def summary(self) -> str:
        return self.about if isinstance(self.about, str) else self.about()

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


def _model_servers_summary() -> str:
    from collectors.model_servers import presets

    return presets.summary()


CATALOG: tuple[CollectorSpec, ...] = (
    CollectorSpec(
        "system",
        "collectors.system",
        True,
        "Host CPU, memory, load, disk and network I/O and filesystems (psutil). "
        "Turn off where node_exporter runs.",
    ),
    CollectorSpec(
        "process",
        "collectors.process",
        True,
        "The exporter's own process: CPU seconds, memory, open files, Python GC.",
    ),
    CollectorSpec(
        "database",
        "collectors.database",
        True,
        "SQLAlchemy pool and PostgreSQL / MySQL / MariaDB / SQLite server statistics "
        "(`databases:`).",
        section="databases",
    ),
    CollectorSpec(
        "redis",
        "collectors.redis",
        True,
        "Redis instances: INFO and LATENCY HISTOGRAM in one round trip per scrape.",
        section="redis",
    ),
    CollectorSpec(
        "model_servers",
        "collectors.model_servers",
        True,
        _model_servers_summary,
        section="model_servers",
    ),
    CollectorSpec(
        "task_queue",
        "collectors.task_queue",
        True,
        "Background work per task_queues entry: Celery (Redis or RabbitMQ), RQ, Redis lists "
        "and sorted sets, SQL tables, RabbitMQ queues: depth by priority, in progress, "
        "processed, oldest waiting age, workers.",
        section="task_queues",
    ),
)

BY_NAME: dict[str, CollectorSpec] = {spec.name: spec for spec in CATALOG}
BY_SECTION: dict[str, CollectorSpec] = {spec.section: spec for spec in CATALOG if spec.section}
