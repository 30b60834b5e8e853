"""HTTP model servers (KServe v2 / Triton, TorchServe, TGI, vLLM, Ollama, or any HTTP health URL)
probed at scrape time.

- `presets`: one record per kind of server (its documented endpoints and readiness rules);
- `readiness`: what presets are written with (answers, health, shared checks);
- `probe` and `client`: the HTTP side (httpx), one client per server;
- `families`: every family served, declared once (`SPECS`);
- `engines`, `page` and `inference`: which of each engine's own metric families make the
  normalised inference view (data), reading its metrics page, fetching it in the scrape;
- `collector`: the collector the catalog builds, one per configured server.

Importing this package does not import httpx (the catalog reads the presets for its summary).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collectors.model_servers.engines import engine_table
from collectors.model_servers.families import LATENCY_BUCKETS, SPECS, STATUSES
from collectors.model_servers.preset import Preset
from collectors.model_servers.presets import PRESETS, preset_table
from collectors.model_servers.target import Target

if TYPE_CHECKING:
    from collectors.model_servers.collector import ModelServerCollector

__all__ = [
    "LATENCY_BUCKETS",
    "PRESETS",
    "SPECS",
    "STATUSES",
    "TABLES",
    "ModelServerCollector",
    "Preset",
    "Target",
    "build",
]

#: Tables of the docs written from this package's data (python -m exporter.docs_tables).
TABLES = {"presets": preset_table, "engines": engine_table}


def build(options: None, target: Target) -> ModelServerCollector:
    """A collector for `target`; its client is made on its first fetch (no I/O here)."""
    from collectors.model_servers.collector import ModelServerCollector

    return ModelServerCollector(target)


def __getattr__(name: str) -> Any:
    """`ModelServerCollector` is imported on first use: it needs httpx."""
    if name == "ModelServerCollector":
        from collectors.model_servers.collector import ModelServerCollector

        return ModelServerCollector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
