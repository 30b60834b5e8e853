"""The collector: one per configured server, probing it at scrape time.

The collector **succeeds** whenever the server answered HTTP on its liveness endpoint, whatever
the answer: a server that says "not ready" (503, 400 per model, a body that does not parse) is
data, reported as `model_server_availability` 0 and per-model readiness 0. It **fails**
(`model_server_up` 0, `afirgen_exporter_collector_success` 0, `probe_success` 0 on /probe) only
when the liveness request got no HTTP answer at all: timeout, refused, TLS or connection error.
The probe counters and the latency histogram are still served then.

Where the engine labels its metrics page by model (vLLM) and the page is the API server's own,
the page is read right after the liveness request, within half of what is left of the
deadline (the health requests keep the rest), and the models it names spare the model list
request (`presets.ask_vllm`). Elsewhere it is read after the health requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import Metric

from collectors.base import Deadline, ScrapeContext, SourceCollector, SourceDown
from collectors.model_servers import families as fam
from collectors.model_servers import inference
from collectors.model_servers.client import Connection
from collectors.model_servers.presets import PRESETS
from collectors.model_servers.probe import Probe
from collectors.model_servers.readiness import Health, ProbeFailed
from collectors.model_servers.target import Target
from collectors.model_servers.urls import shown_url
from collectors.specs import FamilySet

#: How long a server's version (from its metadata endpoint) is reused before it is asked again.
VERSION_REFRESH_SECONDS = 300.0


class ModelServerCollector(SourceCollector):
    collector = "model_servers"

    def __init__(self, target: Target) -> None:
        super().__init__(target.name, secrets=target.secrets())
        self.target = target
        self.connection = Connection(target)  # no client until the first fetch
        self.preset = PRESETS[target.kind]
        self.metrics_url = inference.metrics_url(target, self.preset)
        #: the page is read first and its model names used for readiness (see the docstring)
        self.page_first = (
            self.preset.models_on_page
            and self.metrics_url is not None
            and inference.same_origin(self.metrics_url, target.url)
        )
        self._lock = threading.Lock()
        self._totals = fam.Totals()
        self._version = ""
        self._version_at: float | None = None

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        client = self.connection.client()
        probe = Probe(client, self.target.url, ctx.deadline)
        try:
            live = probe.get(self.preset.liveness)
        except ProbeFailed as exc:
            self._account(probe)
            with self._lock:
                self._version_at = None  # ask again once it is back: it may have been upgraded
            message = f"{exc.outcome} from {shown_url(self.target.url)}"
            raise SourceDown(exc.outcome, message) from exc
        page = None
        if self.page_first:
            assert self.metrics_url is not None
            half = Deadline(time.monotonic() + ctx.deadline.remaining() / 2)
            page = inference.load(client, self.target, self.metrics_url, half)
        named = page.named() if page is not None else frozenset()
        want_version = self.preset.name != "generic" and self._version_stale()
        try:
            health = self.preset.ask(probe, self.target, live, want_version, named)
        finally:
            self._account(probe)
        if health.version is not None:
            with self._lock:
                self._version, self._version_at = health.version, time.monotonic()
        for problem in probe.problems[:3]:
            ctx.note(problem)
        families = self._families(ctx, health)
        if self.metrics_url is not None:
            if page is None:
                page = inference.load(client, self.target, self.metrics_url, ctx.deadline)
            self._add_inference(ctx, families, page, health)
        yield from families.families()

    def _add_inference(
        self, ctx: ScrapeContext, families: FamilySet, page: inference.Page, health: Health
    ) -> None:
        """The engine's own numbers; a page that fails leaves them out, with a note."""
        single = next(iter(health.models)) if len(health.models) == 1 else ""
        reading = page.reading(single)
        families.add(fam.METRICS_UP, 0.0 if reading.problem else 1.0)
        if reading.problem:
            ctx.note(reading.problem)
            return
        models = inference.within_budget(ctx, reading.models, self.target.max_models)
        inference.add_families(families, models)

    def _version_stale(self) -> bool:
        with self._lock:
            at = self._version_at
        return at is None or time.monotonic() - at > VERSION_REFRESH_SECONDS

    def _account(self, probe: Probe) -> None:
        with self._lock:
            self._totals.add(probe.outcomes, probe.latencies)

    def _families(self, ctx: ScrapeContext, health: Health) -> FamilySet:
        families = FamilySet(self.name)
        families.add(fam.UP, 1.0)
        families.add(fam.AVAILABILITY, 1.0 if health.ready else 0.0)
        limit = 0 if self.target.models else self.target.max_models
        kept = ctx.keep_top({m: 1.0 for m in health.models}, limit)
        fam.models(families, fam.MODEL_READY, {m: v for m, v in health.models.items() if m in kept})
        if self.preset.name == "ollama":
            kept_loaded = ctx.keep_top(health.loaded, limit)
            loaded = {m: v for m, v in health.loaded.items() if m in kept_loaded}
            fam.models(families, fam.MODEL_LOADED, loaded)
        with self._lock:
            version = self._version
            totals = self._totals.copy()
        families.add(fam.INFO, 1.0, self.preset.name, version)
        totals.fill(families)
        return families

    def down_families(self) -> Sequence[Metric]:
        with self._lock:
            totals = self._totals.copy()
        return fam.down(self.name, self.target.models, totals, self.metrics_url is not None)

    def abandon(self) -> None:
        """The engine stopped waiting for a run: cut it off; the next run dials afresh."""
        self.connection.drop()

    def close(self) -> None:
        """Cut off any request in flight and close the client; a later run makes none."""
        self.connection.drop(close=True)
