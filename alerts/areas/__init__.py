"""The rules, one module per area, in the order the rule files list their groups."""

from __future__ import annotations

from alerts.areas import api, cache, database, exporter, host, model_servers, task_queue
from alerts.rules import Area

AREAS: tuple[Area, ...] = (
    exporter.AREA,
    database.AREA,
    cache.AREA,
    model_servers.AREA,
    task_queue.AREA,
    host.AREA,
    api.AREA,
)
