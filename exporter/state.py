"""The exporter's current config and what was built from it; reload swaps it whole.

A reload reads the file again. A config that does not load is refused and the old one keeps
serving; a good one replaces the units (a unit whose settings did not change keeps its status
and logged state). Scrapes already in flight finish on the old engine,
which is closed once they are done (bounded), so a reload never fails a scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

from collectors.base import SourceCollector
from collectors.catalog import CATALOG
from exporter.config import Config, read_config, with_overrides
from exporter.schema import ConfigError
from exporter.scrape import ScrapeEngine, Unit
from exporter.self_metrics import RELOAD_OK, RELOAD_TIME
from exporter.units import build_units

log = logging.getLogger("afirgen_exporter")


@dataclass(frozen=True)
class Loaded:
    config: Config
    units: tuple[Unit, ...]
    engine: ScrapeEngine

    def metrics_units(self) -> list[Unit]:
        return [u for u in self.units if u.in_metrics]

    def enabled_collectors(self) -> list[str]:
        return sorted({u.collector_name for u in self.units if u.in_metrics})


class Exporter:
    """Holds the loaded config; the HTTP app asks it for the current units on every request."""

    def __init__(
        self,
        config: Config,
        *,
        extra_collectors: Sequence[SourceCollector] = (),
        reload_overrides: dict[str, object] | None = None,
    ) -> None:
        self._extra = tuple(extra_collectors)
        self._overrides = reload_overrides or {}
        self.last_reload_ok = True
        self.last_reload_success = time.time()
        #: Engines a reload replaced, while they finish their scrapes and close.
        self._closing: dict[asyncio.Task[None], ScrapeEngine] = {}
        #: Abandoned collections per unit, counted across reloads (a counter never goes back).
        self._abandoned_total: dict[tuple[str, str], int] = {}
        self.loaded = self._load(config)

    def _load(self, config: Config) -> Loaded:
        units = tuple(build_units(config, self._extra))
        engine = ScrapeEngine(
            units,
            namespace=config.namespace,
            gzip_level=config.scrape.gzip_level,
            created_series=config.scrape.created_series,
            extra_families=self.reload_families,
            abandoned_total=self._abandoned_total,
        )
        return Loaded(config, units, engine)

    @property
    def config(self) -> Config:
        return self.loaded.config

    def known_collectors(self) -> list[str]:
        return [spec.name for spec in CATALOG] + sorted({c.collector for c in self._extra})

    async def reload(self) -> Config:
        """Load the config file again; raise ConfigError (old config kept) when it is bad."""
        source = self.config.source
        if source is None:  # refused like any failed reload (Prometheus's own gauge goes to 0)
            self.last_reload_ok = False
            raise ConfigError(["no config file to reload: the exporter started without one"])
        loop = asyncio.get_running_loop()
        try:
            config = await loop.run_in_executor(None, read_config, source)
            config = with_overrides(config, **self._overrides)  # type: ignore[arg-type]
            loaded = await loop.run_in_executor(None, self._load, config)
        except ConfigError:
            self.last_reload_ok = False
            raise
        except Exception as exc:  # a collector module that fails to build its clients
            self.last_reload_ok = False
            raise ConfigError(
                [f"{source}: {type(exc).__name__} while building collectors"]
            ) from exc
        if config.web.listen_address != self.config.web.listen_address:
            log.warning("web.listen_address changed: it takes effect after a restart")
        loaded.engine.carry_over(self.loaded.engine)
        old, self.loaded = self.loaded, loaded
        self.last_reload_ok = True
        self.last_reload_success = time.time()
        closing = asyncio.get_running_loop().create_task(old.engine.aclose())
        self._closing[closing] = old.engine  # keep a reference until it is done
        closing.add_done_callback(self._closing.pop)
        log.info("config reloaded from %s: %d targets", source, len(loaded.units))
        return config

    def reload_families(self) -> Iterator[Metric]:
        yield RELOAD_OK.single(1.0 if self.last_reload_ok else 0.0)
        yield RELOAD_TIME.single(self.last_reload_success)

    def stop_scrapes(self) -> None:
        """Shutdown began: the scrapes in flight on every engine answer now."""
        for engine in (self.loaded.engine, *self._closing.values()):
            engine.stop_scrapes()

    async def aclose(self) -> None:
        await self.loaded.engine.aclose(grace_seconds=1.0)
