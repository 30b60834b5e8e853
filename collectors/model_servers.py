"""HTTP model servers (KServe v2 / Triton, TorchServe, TGI, vLLM, Ollama, or any HTTP health URL)
probed at scrape time.

One collector per configured server, each with one long-lived `httpx.Client`, so keep-alive
connections are reused from one scrape to the next. Each scrape asks the server's liveness
endpoint first, then its readiness, per-model readiness and (every few minutes) its version;
which endpoints a kind has is the `PRESETS` table below, written from each server's public API
documentation.

What the families mean (and what counts as the collector failing):

- The collector **succeeds** whenever the server answered HTTP on its liveness endpoint, whatever
  the answer: a server that says "not ready" (503, 400 per model, a body that does not parse) is
  data, reported as `model_server_availability` 0 and per-model readiness 0.
- It **fails** (`model_server_up` 0, `afirgen_exporter_collector_success` 0, `probe_success` 0
  on /probe) only when the liveness request got no HTTP answer at all: timeout, refused, TLS or
  connection error. The probe counters and the latency histogram are still served then.

Requests run one after another on the target's keep-alive connection: on a loopback or LAN round
trip (well under a millisecond) handing them to threads costs more than it saves, and the scrape
engine already probes all servers concurrently.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from collectors.base import Deadline, ScrapeContext, SourceCollector, SourceDown, up_family
from collectors.checks import (
    check_existing_file,
    check_header_names,
    check_header_value,
    check_limit,
    check_positive,
)
from collectors.secret import Secret, redact_url

Kind = Literal["generic", "kserve", "triton", "torchserve", "tgi", "vllm", "ollama"]

#: Upper bounds of `model_server_latency_seconds`, 5 ms to 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Every value of the `status` label of `model_server_requests_total`: the HTTP status class of
#: an answer, `body_mismatch` for an answer whose body is not what the API documents, or why no
#: answer came.
STATUSES = ("2xx", "3xx", "4xx", "5xx", "body_mismatch", "timeout", "refused", "tls", "connection")
TRANSPORT_FAILURES = ("timeout", "refused", "tls", "connection")

#: How long a server's version (from its metadata endpoint) is reused before it is asked again.
VERSION_REFRESH_SECONDS = 300.0
#: A health or model list answer larger than this is not what any documented API returns.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Idle keep-alive connections are kept this long, longer than any usual scrape interval.
KEEPALIVE_EXPIRY_SECONDS = 300.0
#: A request gives up this much (at most a tenth of what is left) before the scrape deadline.
DEADLINE_MARGIN_SECONDS = 0.05
#: Model names become label values: longer ones are cut.
MAX_MODEL_NAME = 128


def check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL with a host")
    if parts.password is not None:
        raise ValueError("must not hold a password (use bearer_token_file or headers)")
    return value.rstrip("/") if parts.path in ("", "/") else value


def check_status_codes(value: tuple[int, ...]) -> tuple[int, ...]:
    if not value:
        raise ValueError("must list at least one status code")
    for code in value:
        if not 100 <= code <= 599:
            raise ValueError(f"{code} is not an HTTP status code")
    return value


@dataclass(frozen=True)
class Target:
    """One entry of `model_servers:`."""

    name: str
    url: str = field(metadata={"check": check_url})
    kind: Kind = "generic"
    #: Models whose readiness is reported; empty: what the server lists (vLLM, TGI, Ollama).
    models: tuple[str, ...] = ()
    timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    bearer_token: Secret | None = field(default=None, metadata={"check": check_header_value})
    bearer_token_file: str | None = field(
        default=None, metadata={"secret_file_for": "bearer_token"}
    )
    #: Extra request headers (an API key header, a Host for a gateway); values may use ${ENV}.
    headers: Mapping[str, str] = field(
        default_factory=dict,
        metadata={"check": check_header_names, "check_each": check_header_value},
    )
    tls_verify: bool = True
    ca_file: str | None = field(default=None, metadata={"check": check_existing_file})
    cert_file: str | None = field(default=None, metadata={"check": check_existing_file})
    key_file: str | None = field(default=None, metadata={"check": check_existing_file})
    #: generic: the status codes that mean ready.
    expected_status: tuple[int, ...] = field(default=(200,), metadata={"check": check_status_codes})
    #: generic: a dotted path into the JSON answer (`status`, `checks.0.state`) that must exist...
    json_field: str | None = None
    #: ...and, when set, equal this text (compared with the JSON value written as text).
    json_equals: str | None = None
    #: TorchServe: its management API (`http://host:8081`), for per-model worker readiness.
    management_url: str | None = field(default=None, metadata={"check": check_url})
    #: At most this many models the server lists are reported when `models` is empty.
    max_models: int = field(default=20, metadata={"check": check_limit})

    def __post_init__(self) -> None:
        if self.json_equals is not None and self.json_field is None:
            raise ValueError("json_equals needs json_field")
        generic_only = (self.json_field, self.expected_status != (200,))
        if self.kind != "generic" and any(generic_only):
            raise ValueError("expected_status and json_field are for kind generic only")
        if self.management_url is not None and self.kind != "torchserve":
            raise ValueError("management_url is for kind torchserve only")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")


def build(options: None, target: Target) -> ModelServerCollector:
    return ModelServerCollector(target, make_client(target))


def ssl_context(target: Target) -> ssl.SSLContext:
    """Verification as configured: the system CAs or `ca_file`, optionally a client cert."""
    context = ssl.create_default_context(cafile=target.ca_file)
    if not target.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if target.cert_file:
        context.load_cert_chain(target.cert_file, target.key_file)
    return context


def make_client(target: Target) -> httpx.Client:
    """The target's one client: auth headers, TLS settings, keep-alive across scrapes."""
    headers = {"User-Agent": "afirgen-exporter", "Accept": "application/json"}
    headers.update(target.headers)
    if target.bearer_token:
        headers["Authorization"] = f"Bearer {target.bearer_token.reveal()}"
    return httpx.Client(
        headers=headers,
        verify=ssl_context(target),
        follow_redirects=False,
        trust_env=False,  # never send a probe through a proxy from the environment
        limits=httpx.Limits(
            max_connections=4,
            max_keepalive_connections=2,
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        ),
    )


# -- one scrape's requests ------------------------------------------------------------------


class ProbeFailed(Exception):
    """A request that got no HTTP answer; `outcome` is one of TRANSPORT_FAILURES."""

    def __init__(self, outcome: str, path: str) -> None:
        super().__init__(f"{outcome} on {path}")
        self.outcome = outcome
        self.path = path


class BodyMismatch(Exception):
    """An answer whose body is not what the server's API documents."""


@dataclass
class Answer:
    status: int
    body: bytes
    index: int  # its place in the probe's outcome list

    @property
    def ok(self) -> bool:
        return self.status == 200


def transport_outcome(exc: BaseException) -> str:
    """Why a request got no answer, from httpx's exception and what it wraps."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return "tls"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        if isinstance(current, TimeoutError):
            return "timeout"
        current = current.__cause__ or current.__context__
    return "connection"


class Probe:
    """The requests of one scrape of one server, with their outcomes and latencies."""

    def __init__(self, client: httpx.Client, base_url: str, deadline: Deadline) -> None:
        self.client = client
        self.base_url = base_url  # used as written for the liveness URL (generic: the URL)
        self.deadline = deadline
        self.outcomes: list[str] = []
        self.latencies: list[float] = []
        self.problems: list[str] = []
        self.timed_out = False

    def get(self, path: str, *, base_url: str | None = None) -> Answer:
        """GET `path` within what is left of the deadline; ProbeFailed without an answer."""
        if self.timed_out or self.deadline.expired():  # the budget is spent: ask nothing more
            raise ProbeFailed("timeout", path)
        url = (base_url or self.base_url).rstrip("/") + path if path else self.base_url
        # end a little before the deadline, so the timeout is counted here and the collection
        # still answers before the scrape engine gives up on it
        left = self.deadline.remaining()
        timeout = max(0.001, left - min(DEADLINE_MARGIN_SECONDS, left / 10))
        started = time.perf_counter()
        try:
            with self.client.stream("GET", url, timeout=httpx.Timeout(timeout)) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        break
                status = response.status_code
        except httpx.HTTPError as exc:
            outcome = transport_outcome(exc)
            self.timed_out = outcome == "timeout"
            self.outcomes.append(outcome)
            self.problems.append(f"{outcome} on {path or '/'}")
            raise ProbeFailed(outcome, path) from exc
        self.latencies.append(time.perf_counter() - started)
        self.outcomes.append(f"{status // 100}xx")
        answer = Answer(status, bytes(body), len(self.outcomes) - 1)
        if len(body) > MAX_BODY_BYTES:
            self.mismatch(answer, path)
        elif status != 200:
            self.problems.append(f"http_{status // 100}xx on {path or '/'}")
        return answer

    def json(self, answer: Answer, path: str) -> Any:
        """The answer's JSON; a body that does not parse counts as `body_mismatch`."""
        try:
            return json.loads(answer.body)
        except ValueError:
            self.mismatch(answer, path)
            raise BodyMismatch(path) from None

    def mismatch(self, answer: Answer, path: str) -> None:
        self.outcomes[answer.index] = "body_mismatch"
        self.problems.append(f"body_mismatch on {path or '/'}")

    def get_json(self, path: str, *, base_url: str | None = None) -> tuple[Answer, Any]:
        answer = self.get(path, base_url=base_url)
        if not answer.ok:
            return answer, None
        return answer, self.json(answer, path)


@dataclass
class Health:
    """What one scrape learned about a server (after its liveness request answered)."""

    ready: bool = False
    #: model -> 1/0 ready
    models: dict[str, float] = field(default_factory=dict)
    #: model -> 1/0 loaded in memory (Ollama)
    loaded: dict[str, float] = field(default_factory=dict)
    version: str | None = None  # None: not asked this scrape


def tolerant(check: Callable[[], bool]) -> bool:
    """A readiness check whose request failed or whose body did not fit counts as not ready."""
    try:
        return check()
    except (ProbeFailed, BodyMismatch, KeyError, TypeError, ValueError, AttributeError):
        return False


def answers_ok(probe: Probe, path: str) -> bool:
    """A status-code-only check (the v2 health API): 200 ready, anything else not."""
    try:
        return probe.get(path).ok
    except ProbeFailed:
        return False


def items(data: Any, key: str) -> list[Any]:
    """`data[key]` as a list (the model lists of the OpenAI-style and Ollama APIs)."""
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise BodyMismatch(key)
    return value


# -- presets: one function per kind, from each server's documented API ----------------------


def probe_generic(probe: Probe, target: Target, live: Answer, want_version: bool) -> Health:
    """Any HTTP health URL: an expected status and, optionally, a JSON field check."""
    ready = live.status in target.expected_status
    if ready and target.json_field is not None:
        try:
            value = json_path(json.loads(live.body), target.json_field)
        except (ValueError, KeyError, IndexError, TypeError):
            value = _MISSING
        wanted = target.json_equals
        if value is _MISSING or (wanted is not None and json_text(value) != wanted):
            probe.mismatch(live, "")
            ready = False
    return Health(ready=ready)


def probe_v2(probe: Probe, target: Target, live: Answer, want_version: bool) -> Health:
    """KServe Open Inference Protocol v2 (also Triton): live, ready, each model, `/v2`."""
    health = Health()
    if not live.ok:
        health.models = dict.fromkeys(target.models, 0.0)
        return health
    server_ready = answers_ok(probe, "/v2/health/ready")
    for model in target.models:
        ready = answers_ok(probe, f"/v2/models/{quote(model, safe='')}/ready")
        health.models[model] = 1.0 if ready else 0.0
    health.ready = server_ready and all(health.models.values())
    if want_version:
        health.version = version_from(probe, "/v2", "version")
    return health


def probe_torchserve(probe: Probe, target: Target, live: Answer, want_version: bool) -> Health:
    """TorchServe: `/ping` answers {"status": "Healthy"}; model workers from the management API."""
    health = Health()
    try:
        status = probe.json(live, "/ping").get("status") if live.ok else None
    except (BodyMismatch, AttributeError):
        status = None
    health.ready = status == "Healthy"
    management = target.management_url
    for model in target.models:
        if management is None or not health.ready:
            health.models[model] = 1.0 if health.ready else 0.0
            continue

        def workers_ready(m: str = model) -> bool:
            _, data = probe.get_json(f"/models/{quote(m, safe='')}", base_url=management)
            entries = data if isinstance(data, list) else []
            return any(w.get("status") == "READY" for e in entries for w in e.get("workers", ()))

        health.models[model] = 1.0 if tolerant(workers_ready) else 0.0
    health.ready = health.ready and all(health.models.values())
    return health


def probe_tgi(probe: Probe, target: Target, live: Answer, want_version: bool) -> Health:
    """Text Generation Inference: `/health` 200 or 503; model id and version from `/info`."""
    health = Health()
    info: dict[str, Any] = {}
    if want_version or target.models or live.ok:
        try:
            _, data = probe.get_json("/info")
            info = data if isinstance(data, dict) else {}
        except (ProbeFailed, BodyMismatch):
            info = {}
    served = str(info.get("model_id", ""))[:MAX_MODEL_NAME]
    for model in target.models or ((served,) if served else ()):
        health.models[model] = 1.0 if live.ok and model == served else 0.0
    health.ready = live.ok and all(health.models.values())
    if want_version and "version" in info:
        health.version = str(info["version"])
    return health


def probe_vllm(probe: Probe, target: Target, live: Answer, want_version: bool) -> Health:
    """vLLM's OpenAI-compatible server: `/health`, served models from `/v1/models`, `/version`."""
    health = Health()
    served: list[str] = []
    if live.ok:
        try:
            _, data = probe.get_json("/v1/models")
            served = [str(m["id"]) for m in items(data, "data")]
        except (ProbeFailed, BodyMismatch, KeyError, TypeError):
            served = []
    health.models = models_present(target, served, live.ok)
    health.ready = live.ok and all(health.models.values())
    if want_version:
        health.version = version_from(probe, "/version", "version")
    return health


def probe_ollama(probe: Probe, target: Target, live: Answer, want_version: bool) -> Health:
    """Ollama: `/api/version` (liveness and version), models present from `/api/tags`, models
    loaded in memory from `/api/ps`. A present model is ready: Ollama loads it on first use."""
    health = Health()
    if not live.ok:
        health.models = dict.fromkeys(target.models, 0.0)
        return health
    version: Any = None
    try:
        version = probe.json(live, "/api/version").get("version")
    except (BodyMismatch, AttributeError):
        return Health(models=dict.fromkeys(target.models, 0.0))
    present = ollama_names(probe, "/api/tags")
    running = ollama_names(probe, "/api/ps")
    health.models = models_present(target, present or [], present is not None, ollama_tag)
    names = health.models if target.models else {n: 1.0 for n in (present or [])}
    running_set = {ollama_tag(n) for n in running or []}
    health.loaded = {m: 1.0 if ollama_tag(m) in running_set else 0.0 for m in names}
    health.ready = present is not None and all(health.models.values())
    if want_version and version is not None:
        health.version = str(version)
    return health


#: kind -> (liveness path, the function that asks the rest). The one table of presets.
PRESETS: dict[str, tuple[str, Callable[[Probe, Target, Answer, bool], Health]]] = {
    "generic": ("", probe_generic),
    "kserve": ("/v2/health/live", probe_v2),
    "triton": ("/v2/health/live", probe_v2),
    "torchserve": ("/ping", probe_torchserve),
    "tgi": ("/health", probe_tgi),
    "vllm": ("/health", probe_vllm),
    "ollama": ("/api/version", probe_ollama),
}


def ollama_tag(name: str) -> str:
    """Ollama names a model without a tag `NAME:latest`."""
    return name if ":" in name else f"{name}:latest"


def ollama_names(probe: Probe, path: str) -> list[str] | None:
    try:
        _, data = probe.get_json(path)
        return [str(m.get("name") or m["model"]) for m in items(data, "models")]
    except (ProbeFailed, BodyMismatch, KeyError, TypeError, AttributeError):
        return None


def models_present(
    target: Target,
    served: Sequence[str],
    answered: bool,
    normalise: Callable[[str], str] = str,
) -> dict[str, float]:
    """Configured models: 1 when the server lists them. None configured: what it lists."""
    if not target.models:
        return {name[:MAX_MODEL_NAME]: 1.0 for name in served}
    listed = {normalise(s) for s in served}
    return {m: 1.0 if answered and normalise(m) in listed else 0.0 for m in target.models}


def version_from(probe: Probe, path: str, key: str) -> str | None:
    try:
        _, data = probe.get_json(path)
    except (ProbeFailed, BodyMismatch):
        return None
    if isinstance(data, dict) and key in data:
        return str(data[key])[:64]
    return None


_MISSING: Any = object()


def json_path(data: Any, path: str) -> Any:
    """`a.b.0.c` into nested JSON objects and arrays; KeyError/IndexError when absent."""
    for part in path.split("."):
        if isinstance(data, list):
            data = data[int(part)]
        elif isinstance(data, dict):
            data = data[part]
        else:
            raise KeyError(part)
    return data


def json_text(value: Any) -> str:
    """A JSON value as text the way a config writes it: `true`, `1`, `UP`."""
    return value if isinstance(value, str) else json.dumps(value)


# -- the collector --------------------------------------------------------------------------


@dataclass
class Totals:
    """What accumulates across scrapes: requests by outcome and the latency histogram."""

    requests: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0.0))
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(LATENCY_BUCKETS))
    count: float = 0.0
    total: float = 0.0

    def add(self, probe: Probe) -> None:
        for outcome in probe.outcomes:
            self.requests[outcome] += 1
        for seconds in probe.latencies:
            self.count += 1
            self.total += seconds
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1


class ModelServerCollector(SourceCollector):
    kind = "model_servers"

    def __init__(self, target: Target, client: httpx.Client) -> None:
        secrets = list(target.headers.values())
        if target.bearer_token:
            secrets.append(target.bearer_token.reveal())
        super().__init__(target.name, secrets=secrets)
        self.target = target
        self.client = client
        self.liveness_path, self.ask = PRESETS[target.kind]
        self._lock = threading.Lock()
        self._totals = Totals()
        self._version = ""
        self._version_at: float | None = None

    def fetch(self, ctx: ScrapeContext) -> Iterator[Metric]:
        started = time.perf_counter()
        probe = Probe(self.client, self.target.url, ctx.deadline)
        try:
            live = probe.get(self.liveness_path)
        except ProbeFailed as exc:
            self._account(probe)
            with self._lock:
                self._version_at = None  # ask again once it is back: it may have been upgraded
            message = f"{exc.outcome} from {redact_url(self.target.url)}"
            raise SourceDown(exc.outcome, message) from exc
        want_version = self.target.kind != "generic" and self._version_stale()
        try:
            health = self.ask(probe, self.target, live, want_version)
        finally:
            self._account(probe)
        if health.version is not None:
            with self._lock:
                self._version, self._version_at = health.version, time.monotonic()
        for problem in probe.problems[:3]:
            ctx.note(problem)
        yield from self._families(ctx, health, time.perf_counter() - started)

    def _version_stale(self) -> bool:
        with self._lock:
            at = self._version_at
        return at is None or time.monotonic() - at > VERSION_REFRESH_SECONDS

    def _account(self, probe: Probe) -> None:
        with self._lock:
            self._totals.add(probe)

    def _families(self, ctx: ScrapeContext, health: Health, seconds: float) -> Iterator[Metric]:
        server = [self.name]
        yield self._up(True)
        yield self._availability(health.ready)
        limit = 0 if self.target.models else self.target.max_models
        kept = ctx.keep_top({m: 1.0 for m in health.models}, limit)
        yield self._model_gauge(
            "model_server_model_ready",
            "1 if the model is ready for inference (as the server's API reports it).",
            {m: v for m, v in health.models.items() if m in kept},
        )
        if self.target.kind == "ollama":
            kept_loaded = ctx.keep_top(health.loaded, 0 if self.target.models else limit)
            yield self._model_gauge(
                "model_server_model_loaded",
                "1 if Ollama has the model loaded in memory (/api/ps).",
                {m: v for m, v in health.loaded.items() if m in kept_loaded},
            )
        info = GaugeMetricFamily(
            "model_server_info",
            "The model server's kind (preset) and version as it reports it; value 1.",
            labels=["server", "kind", "version"],
        )
        with self._lock:
            version = self._version
        info.add_metric([self.name, self.target.kind, version], 1.0)
        yield info
        duration = GaugeMetricFamily(
            "model_server_probe_duration_seconds",
            "Time this scrape's probe of the model server took (all its requests).",
            labels=["server"],
            unit="seconds",
        )
        duration.add_metric(server, seconds)
        yield duration
        yield from self._accumulated()

    def _up(self, up: bool) -> GaugeMetricFamily:
        return up_family(
            "model_server_up",
            "1 if the model server answered its liveness endpoint over HTTP in this scrape.",
            ["server"],
            [self.name],
            up,
        )

    def _availability(self, ready: bool) -> GaugeMetricFamily:
        return up_family(
            "model_server_availability",
            "1 if the model server and every configured model are ready to serve, else 0.",
            ["server"],
            [self.name],
            ready,
        )

    def _model_gauge(self, name: str, help_text: str, values: Mapping[str, float]) -> Metric:
        family = GaugeMetricFamily(name, help_text, labels=["server", "model"])
        for model, value in sorted(values.items()):
            family.add_metric([self.name, model], value)
        return family

    def _accumulated(self) -> Iterator[Metric]:
        with self._lock:
            totals = Totals(
                dict(self._totals.requests),
                list(self._totals.buckets),
                self._totals.count,
                self._totals.total,
            )
        requests = CounterMetricFamily(
            "model_server_requests",
            "Probe requests to the model server by outcome: HTTP status class, body_mismatch, "
            "or timeout/refused/tls/connection when no answer came.",
            labels=["server", "status"],
        )
        for status in STATUSES:
            requests.add_metric([self.name, status], totals.requests[status])
        yield requests
        latency = HistogramMetricFamily(
            "model_server_latency_seconds",
            "Latency of the probe requests the model server answered, since the exporter started.",
            labels=["server"],
            unit="seconds",
        )
        buckets = [(_le(b), c) for b, c in zip(LATENCY_BUCKETS, totals.buckets, strict=True)]
        buckets.append(("+Inf", totals.count))
        latency.add_metric([self.name], buckets, totals.total)
        yield latency

    def down_families(self) -> Sequence[Metric]:
        """Unreachable: up and availability 0, configured models 0, the accumulated counts."""
        families: list[Metric] = [self._up(False), self._availability(False)]
        if self.target.models:
            families.append(
                self._model_gauge(
                    "model_server_model_ready",
                    "1 if the model is ready for inference (as the server's API reports it).",
                    dict.fromkeys(self.target.models, 0.0),
                )
            )
        families.extend(self._accumulated())
        return families

    def close(self) -> None:
        self.client.close()


def _le(bound: float) -> str:
    return repr(float(bound))
