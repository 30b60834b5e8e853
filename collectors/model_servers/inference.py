"""Inference traffic from the engine's own metrics page, in the normalised families.

Read in the same collection as the probe, after it, over the same client (so the same TLS,
auth and whole-request deadline; vLLM, TGI and KServe serve it on the API port, so on the
probe's kept-alive connection). A page that cannot be had or read costs only these families:
`model_server_metrics_up` 0 and a note on the landing page; availability is the probe's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from collectors.base import Deadline, ScrapeContext
from collectors.model_servers import families as fam
from collectors.model_servers.client import Client
from collectors.model_servers.engines import ENGINES, Into
from collectors.model_servers.page import INF, Histogram, Numbers, PageError, PageReader, attribute
from collectors.model_servers.preset import Preset
from collectors.model_servers.probe import Probe
from collectors.model_servers.readiness import ProbeFailed
from collectors.model_servers.target import Target
from collectors.model_servers.urls import request_url, shown_url
from collectors.specs import FamilySet, MetricSpec

#: An engine's page is tens of KiB per model; past this it is not a metrics page we can afford.
MAX_PAGE_BYTES = 8 * 1024 * 1024
#: The text format (every engine here serves it; prometheus_client chooses it by this header).
ACCEPT_TEXT = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"}
#: Label value the models beyond the budget are summed under.
OTHER = "other"

_READERS = {name: PageReader(reads) for name, reads in ENGINES.items()}


def metrics_url(target: Target, preset: Preset) -> str | None:
    """`metrics_url` if set, else the preset's path under the URL (on its own port if it has
    one); None for presets without engine metrics."""
    if target.metrics_url is not None:
        return target.metrics_url
    if preset.metrics_path is None or preset.name not in ENGINES:
        return None
    url = request_url(target.url, preset.metrics_path)
    if preset.metrics_port is None:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return urlunsplit(parts._replace(netloc=f"{host}:{preset.metrics_port}"))


@dataclass
class Reading:
    """The page's numbers per model (after the budget), or why there are none."""

    models: dict[str, Numbers]
    problem: str = ""


@dataclass
class Page:
    """One read of the page: numbers by the model the engine names, those of families that name
    none (the server's single model), or why there are none (`problem`)."""

    by_model: dict[str, Numbers] = field(default_factory=dict)
    unnamed: Numbers = field(default_factory=Numbers)
    problem: str = ""

    def named(self) -> frozenset[str]:
        """The models the page names (none when it could not be read)."""
        return frozenset(m for m in self.by_model if m) if not self.problem else frozenset()

    def reading(self, model: str) -> Reading:
        """Numbers per model; `model` is the server's single model as the probe saw it."""
        if self.problem:
            return Reading({}, self.problem)
        return Reading(attribute(self.by_model, self.unnamed, model))


def fetch(client: Client, url: str, deadline: Deadline) -> str:
    """The page's text; ProbeFailed without an answer, PageError for a bad one."""
    request = Probe(client, url, deadline, max_body=MAX_PAGE_BYTES, headers=ACCEPT_TEXT)
    answer = request.get("")
    if len(answer.body) > MAX_PAGE_BYTES:
        raise PageError(f"larger than {MAX_PAGE_BYTES // 2**20} MiB")
    if answer.status != 200:
        raise PageError(f"HTTP {answer.status}")
    try:
        return answer.body.decode("utf-8")
    except UnicodeDecodeError:
        raise PageError("not UTF-8 text") from None


def load(client: Client, target: Target, url: str, deadline: Deadline) -> Page:
    """Fetch and read the page (only the families `engines` names)."""
    try:
        text = fetch(client, url, deadline)
        by_model, unnamed, known = _READERS[target.kind].read(text)
    except ProbeFailed as exc:
        return Page(problem=f"engine metrics: {exc.outcome} from {shown_url(url)}")
    except PageError as exc:
        return Page(problem=f"engine metrics: {exc} from {shown_url(url)}")
    if not known:
        hint = " (TorchServe: metrics_mode prometheus)" if target.kind == "torchserve" else ""
        where = shown_url(url)
        return Page(problem=f"engine metrics: none of the engine's families at {where}{hint}")
    return Page(by_model, unnamed)


def same_origin(url: str, other: str) -> bool:
    """Both URLs reach the same scheme, host and port (the page is the API server's own)."""
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def within_budget(ctx: ScrapeContext, models: dict[str, Numbers], limit: int) -> dict[str, Numbers]:
    """The `limit` busiest models; the others summed under `other` (counted as dropped)."""
    kept = ctx.keep_top({m: n.weight() for m, n in models.items()}, limit)
    if len(kept) == len(models):
        return models
    result = {m: n for m, n in models.items() if m in kept}
    other = result.setdefault(OTHER, Numbers())
    for model, numbers in models.items():
        if model not in kept:
            other.merge(numbers)
    return result


def add_families(families: FamilySet, models: dict[str, Numbers]) -> None:
    """The normalised families, each model's numbers where the engine has them."""
    for model, numbers in sorted(models.items()):
        v = numbers.values
        if Into.SUCCESS in v or Into.FAILURE in v:
            families.add(fam.REQUESTS, v.get(Into.SUCCESS, 0.0), model, "success")
            families.add(fam.REQUESTS, v.get(Into.FAILURE, 0.0), model, "failure")
        latency = numbers.histograms.get(Into.LATENCY)
        if latency is None and Into.LATENCY_SUM in v:  # duration counters: sum and count only
            latency = Histogram({INF: v.get(Into.LATENCY_COUNT, 0.0)}, v[Into.LATENCY_SUM])
        if latency is not None:
            _histogram(families, fam.LATENCY, latency, model)
        if Into.TTFT in numbers.histograms:
            _histogram(families, fam.TTFT, numbers.histograms[Into.TTFT], model)
        for into, spec in ((Into.RUNNING, fam.RUNNING), (Into.WAITING, fam.WAITING)):
            if into in v:
                families.add(spec, v[into], model)
        for into in (Into.PROMPT_TOKENS, Into.GENERATION_TOKENS):
            if into in v:
                families.add(fam.TOKENS, v[into], model, into.value)
        if Into.KV_CACHE in v:
            families.add(fam.KV_CACHE, min(1.0, max(0.0, v[Into.KV_CACHE])), model)


def _histogram(families: FamilySet, spec: MetricSpec, histogram: Histogram, model: str) -> None:
    bounds = sorted(b for b in histogram.buckets if b != INF)
    buckets = [(repr(float(b)), histogram.buckets[b]) for b in bounds]
    buckets.append(("+Inf", histogram.count))
    families.histogram(spec, buckets, histogram.total, model)
