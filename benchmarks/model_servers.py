"""Probe one loopback health endpoint through our /probe and through Debian's blackbox_exporter.

Both probe the same endpoint (a uvicorn app in its own process answering `{"status": "UP"}`):
our exporter with a `generic` target checking the JSON field, blackbox_exporter with an `http`
module checking the status code and the body by regexp. Rounds interleave the two; every
request carries Prometheus's headers. Printed: latency p50/p99 per probe as Prometheus sees it,
CPU per probe of each exporter process (harness.cpu_seconds: the kernel's CPU clock of the
process tree, in nanoseconds; the median round and the rounds' spread), and the ratios
ours/blackbox.

Inference numbers: the same endpoint serves a vLLM-sized metrics page (one model, the families
of vLLM's v1 engine with their buckets, about 300 series). Two more rows read it through our
`vllm` preset (`/health` and the page, which names the configured model, so `/v1/models` is not
asked; `/version` every 5 minutes) and, for the page's share, through the same preset pointed
at a one-line page that names the same model (the same requests, a page of one series). Then,
all through the same rounds (so under the same load), a real Prometheus scrapes that page
directly every `--prometheus-interval` (20 ms: about 100 scrapes a round; at 100 ms each of its
scrapes cost it more, so 20 ms is the strict choice) while a second Prometheus without scrape
jobs runs beside it: Prometheus's CPU per scrape is the difference of their CPU over the
scrapes the page counted from it, per round. Printed: CPU per scrape of each (medians of the
rounds, their spread and quartiles, and Prometheus's over the whole run); the ratios
ours/Prometheus for the whole probe and for the page's share (target: 2x or less), and ours
against blackbox's probe plus Prometheus's scrape (the peers' cost of the same view); and the
in-process cost of reading the page (line filter + parse) against prometheus_client's parser
on the whole page.

Run: python benchmarks/model_servers.py [--rounds 10] [--per-round 200] [--baseline TREE]
     [--prometheus-interval 20ms]

`--baseline TREE` (an earlier source tree, e.g. `git archive main | tar -x -C /tmp/main`) runs
a second exporter from it with the same config; its two vLLM rows join the same interleaved
rounds, so before and after are measured side by side under the same load.

`--build-targets N` instead measures what loading a config of N model servers and building
their collectors costs (what `check-config` and a reload pay): time and RSS growth of a fresh
process, and the connection pools and open files that exist afterwards (there should be none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (  # noqa: E402
    PROMETHEUS_HEADERS,
    ROOT,
    cpu_seconds,
    free_port,
    our_exporter,
    percentile,
    started,
    wait_http,
)

#: A vLLM v1 metrics page for one model: its families and bucket layouts (vLLM's docs), with
#: counts that make every bucket non-zero; about 300 series (printed by the run).
VLLM_PAGE = textwrap.dedent(
    """
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    def vllm_sized_page():
        r = CollectorRegistry()
        labels = ["model_name", "engine"]
        ids = ("fir-summarizer", "0")
        secs = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
        fast = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5)
        tokens = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
        for name in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
            Gauge("vllm:" + name, name, labels, registry=r).labels(*ids).set(3)
        for name in ("prompt_tokens", "generation_tokens", "num_preemptions",
                     "prefix_cache_queries", "prefix_cache_hits"):
            Counter("vllm:" + name, name, labels, registry=r).labels(*ids).inc(1234)
        success = Counter("vllm:request_success", "ok", [*labels, "finished_reason"], registry=r)
        for reason in ("stop", "length", "abort"):
            success.labels(*ids, reason).inc(100)
        for name, buckets in (
            ("e2e_request_latency_seconds", secs), ("request_queue_time_seconds", secs),
            ("request_inference_time_seconds", secs), ("request_prefill_time_seconds", secs),
            ("request_decode_time_seconds", secs), ("time_to_first_token_seconds", fast),
            ("inter_token_latency_seconds", fast), ("request_time_per_output_token_seconds", fast),
            ("request_prompt_tokens", tokens), ("request_generation_tokens", tokens),
            ("request_params_max_tokens", tokens), ("iteration_tokens_total", tokens),
            ("request_params_n", tokens), ("request_max_num_generation_tokens", tokens),
            ("request_prefill_kv_computed_tokens", tokens), ("kv_block_lifetime_seconds", secs),
        ):
            h = Histogram("vllm:" + name, name, labels, buckets=buckets, registry=r)
            for i in range(40):
                h.labels(*ids).observe(buckets[i % len(buckets)])
        http = Counter("http_requests", "http", ["handler", "method", "status"], registry=r)
        for handler in ("/v1/completions", "/v1/chat/completions", "/health", "/metrics"):
            for status in ("2xx", "4xx", "5xx"):
                http.labels(handler, "POST", status).inc(7)
        return generate_latest(r)
    """
)

ENDPOINT_APP = VLLM_PAGE + textwrap.dedent(
    """
    import sys
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def healthz(request):
        return JSONResponse({"status": "UP"})

    async def health(request):
        return Response(status_code=200)

    async def models(request):
        return JSONResponse({"object": "list", "data": [{"id": "fir-summarizer"}]})

    async def version(request):
        return JSONResponse({"version": "0.6.4"})

    PAGE = vllm_sized_page()
    HITS = {"prometheus": 0}

    async def metrics(request):
        if request.headers.get("user-agent", "").startswith("Prometheus"):
            HITS["prometheus"] += 1
        return Response(PAGE, media_type="text/plain; version=0.0.4; charset=utf-8")

    ONE_LINE = b'vllm:num_requests_running{model_name="fir-summarizer",engine="0"} 0\\n'

    async def one_line(request):
        return Response(ONE_LINE, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def hits(request):
        return JSONResponse(HITS)

    app = Starlette(routes=[
        Route("/healthz", healthz), Route("/health", health),
        Route("/v1/models", models), Route("/version", version),
        Route("/metrics", metrics), Route("/one-line-metrics", one_line), Route("/hits", hits),
    ])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
    """
)


class Contender:
    def __init__(self, name: str, pid: int, url: str, params: dict[str, str]) -> None:
        self.name = name
        self.pid = pid
        self.url = url
        self.params = params
        self.latencies: list[float] = []
        self.cpu = 0.0
        self.probes = 0
        self.rounds: list[float] = []  # CPU seconds per probe of each round
        self.client = httpx.Client(headers=PROMETHEUS_HEADERS, timeout=15)

    def round(self, n: int) -> None:
        before = cpu_seconds(self.pid)
        for _ in range(n):
            started = time.perf_counter()
            answer = self.client.get(self.url, params=self.params)
            self.latencies.append(time.perf_counter() - started)
            if answer.status_code != 200 or b"probe_success 1" not in answer.content:
                raise SystemExit(f"{self.name}: probe failed: {answer.status_code}")
        spent = cpu_seconds(self.pid) - before
        self.cpu += spent
        self.probes += n
        self.rounds.append(spent / n)

    def cpu_median(self) -> float:
        """The median round's CPU seconds per probe."""
        return statistics.median(self.rounds)

    def spread(self) -> str:
        """The rounds' CPU ms per probe, lowest-highest."""
        return f"{1000 * min(self.rounds):.2f}-{1000 * max(self.rounds):.2f}"

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


BUILD_COST = textwrap.dedent(
    """
    import gc, json, os, sys, time
    import httpcore
    from exporter.config import load_config
    from exporter.units import build_units
    import collectors.model_servers  # the imports are not what is measured
    from collectors.model_servers import PRESETS

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    n = int(sys.argv[1])
    kinds = list(PRESETS)
    data = {"collectors": {"system": {"enabled": False}, "process": {"enabled": False}},
            "model_servers": [{"name": f"m{i}", "kind": kinds[i % len(kinds)],
                               "url": f"https://127.0.0.1:{1 + i % 60000}"} for i in range(n)]}
    for entry in data["model_servers"]:  # Triton's metrics port is plain HTTP: named
        if entry["kind"] == "triton":
            entry["metrics_url"] = "http://127.0.0.1:8002/metrics"
    gc.collect()
    rss0, fds0, t0 = rss(), len(os.listdir("/proc/self/fd")), time.perf_counter()
    config = load_config(data, env={})
    t1 = time.perf_counter()
    units = build_units(config)
    t2 = time.perf_counter()
    clients = sum(isinstance(o, httpcore.ConnectionPool) for o in gc.get_objects())
    print(json.dumps({"load": t1 - t0, "build": t2 - t1, "rss": rss() - rss0, "units": len(units),
                      "fds": len(os.listdir("/proc/self/fd")) - fds0, "clients": clients}))
    """
)


def build_cost(targets: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", BUILD_COST, str(targets)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    cost = json.loads(out.stdout)
    print(
        f"{targets} model servers: load_config {cost['load']:.2f} s, build {cost['build']:.2f} s, "
        f"RSS +{cost['rss'] / 2**20:.1f} MiB, connection pools {cost['clients']}, "
        f"open files +{cost['fds']}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--build-targets", type=int, default=0, metavar="N")
    parser.add_argument("--baseline", type=Path, metavar="TREE", help="an earlier source tree")
    parser.add_argument(
        "--prometheus-interval", default="20ms", help="Prometheus's scrape interval of the page"
    )
    args = parser.parse_args()
    if args.build_targets:
        return build_cost(args.build_targets)
    blackbox = shutil.which("prometheus-blackbox-exporter")
    if blackbox is None:
        raise SystemExit("prometheus-blackbox-exporter is not installed (scripts/install-tools)")
    work = Path(tempfile.mkdtemp(prefix="bench-model-servers-"))
    try:
        with contextlib.ExitStack() as stack:

            def start(name: str, argv: list[str], port: int, tree: Path = ROOT) -> int:
                """Run `argv` in `tree` until the end (output in `work`); its pid once `port`
                listens."""
                env = {"PYTHONPATH": str(tree)}
                server = started(name, argv, port, env=env, log_dir=work, cwd=tree)
                return stack.enter_context(server).pid

            endpoint_port = free_port()
            (work / "endpoint.py").write_text(ENDPOINT_APP)
            endpoint_args = [sys.executable, str(work / "endpoint.py"), str(endpoint_port)]
            start("endpoint", endpoint_args, endpoint_port)
            endpoint = f"http://127.0.0.1:{endpoint_port}"
            wait_http(f"{endpoint}/healthz")

            ours_port = free_port()
            (work / "exporter.yml").write_text(
                textwrap.dedent(
                    f"""
                    collectors: {{system: {{enabled: false}}, process: {{enabled: false}}}}
                    model_servers:
                      - name: bench
                        url: {endpoint}/healthz
                        json_field: status
                        json_equals: UP
                      - name: bench-vllm
                        kind: vllm
                        url: {endpoint}
                        models: [fir-summarizer]
                        metrics_url: {endpoint}/one-line-metrics
                      - name: bench-vllm-page
                        kind: vllm
                        url: {endpoint}
                        models: [fir-summarizer]
                    """
                )
            )
            ours = start("exporter", our_exporter(ours_port, work / "exporter.yml"), ours_port)
            baseline = None
            if args.baseline is not None:  # the same config on an earlier source tree
                base_port = free_port()
                base_args = our_exporter(base_port, work / "exporter.yml")
                baseline = start("baseline", base_args, base_port, args.baseline.resolve())
                wait_http(f"http://127.0.0.1:{base_port}/-/healthy")
            bb_port = free_port()
            (work / "blackbox.yml").write_text(
                textwrap.dedent(
                    """
                    modules:
                      http_json:
                        prober: http
                        timeout: 10s
                        http:
                          valid_status_codes: [200]
                          preferred_ip_protocol: ip4
                          fail_if_body_not_matches_regexp: ['"status":\\s*"UP"']
                    """
                )
            )
            bb_args = [
                blackbox,
                f"--config.file={work / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{bb_port}",
                "--log.level=warn",
            ]
            bb = start("blackbox", bb_args, bb_port)
            wait_http(f"http://127.0.0.1:{ours_port}/-/healthy")
            wait_http(f"http://127.0.0.1:{bb_port}/-/healthy")

            contenders = [
                Contender(
                    "afirgen /probe generic",
                    ours,
                    f"http://127.0.0.1:{ours_port}/probe",
                    {"target": "bench"},
                ),
                Contender(
                    "blackbox http module",
                    bb,
                    f"http://127.0.0.1:{bb_port}/probe",
                    {"target": f"{endpoint}/healthz", "module": "http_json"},
                ),
                Contender(
                    "afirgen /probe vllm, 1-line page",
                    ours,
                    f"http://127.0.0.1:{ours_port}/probe",
                    {"target": "bench-vllm"},
                ),
                Contender(
                    "afirgen /probe vllm + page",
                    ours,
                    f"http://127.0.0.1:{ours_port}/probe",
                    {"target": "bench-vllm-page"},
                ),
            ]
            if baseline is not None:
                contenders += [
                    Contender(
                        f"baseline {name}", baseline, f"http://127.0.0.1:{base_port}/probe",
                        {"target": target},
                    )
                    for name, target in (("vllm, 1-line page", "bench-vllm"),
                                         ("vllm + page", "bench-vllm-page"))
                ]  # fmt: skip
            for contender in contenders:  # warm up: connections, imports, first-request costs
                contender.round(20)
                contender.latencies.clear()
                contender.cpu = 0.0
                contender.probes = 0
                contender.rounds.clear()
            prometheus = start_prometheus(stack, work, endpoint, args.prometheus_interval)
            scraping = Scraping()
            for _ in range(args.rounds):  # Prometheus scrapes the page all through the rounds
                before = prometheus.reading()
                for contender in contenders:
                    contender.round(args.per_round)
                scraping.add(*prometheus.since(before))
            page = httpx.get(f"{endpoint}/metrics").content
        report(contenders, args.rounds, args.per_round)
        report_page(contenders, scraping, page)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


class Scraping:
    """Prometheus's rounds: CPU seconds beyond the idle one's and the page's scrapes, each."""

    def __init__(self) -> None:
        self.rounds: list[tuple[float, int]] = []

    def add(self, extra: float, scrapes: int) -> None:
        if scrapes == 0:
            raise SystemExit("Prometheus did not scrape the page in a round")
        self.rounds.append((extra, scrapes))

    def per_scrape(self) -> list[float]:
        return [extra / scrapes for extra, scrapes in self.rounds]

    def median(self) -> float:
        return statistics.median(self.per_scrape())

    def overall(self) -> float:
        """CPU per scrape over the whole run (every round's extra CPU over all its scrapes)."""
        return sum(e for e, _ in self.rounds) / sum(n for _, n in self.rounds)

    def scrapes(self) -> tuple[int, int, int]:
        """Scrapes in all, and the fewest and most in a round."""
        counts = [n for _, n in self.rounds]
        return sum(counts), min(counts), max(counts)


def spread_ms(values: list[float]) -> str:
    """lowest-highest (and the quartiles, with enough values) in ms."""
    lo, hi = 1000 * min(values), 1000 * max(values)
    if len(values) < 4:
        return f"{lo:.3f}-{hi:.3f}"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{lo:.3f}-{hi:.3f}, quartiles {1000 * q1:.3f}-{1000 * q3:.3f}"


class PrometheusPair:
    """A Prometheus scraping the page often and one without scrape jobs beside it: the
    scraping one's CPU per scrape is the difference of their CPU over the scrapes the page
    counted from it, over the same window as the rounds it is read around."""

    def __init__(self, pids: dict[str, int], endpoint: str) -> None:
        self.pids = pids
        self.endpoint = endpoint

    def reading(self) -> tuple[dict[str, float], int]:
        hits = httpx.get(f"{self.endpoint}/hits").json()["prometheus"]
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}, hits

    def since(self, before: tuple[dict[str, float], int]) -> tuple[float, int]:
        """The scraping one's CPU seconds beyond the idle one's since `before`, and the scrapes
        the page counted."""
        (cpu0, hits0), (cpu1, hits1) = before, self.reading()
        extra = (cpu1["scraping"] - cpu0["scraping"]) - (cpu1["idle"] - cpu0["idle"])
        return extra, hits1 - hits0


def start_prometheus(
    stack: contextlib.ExitStack, work: Path, endpoint: str, interval: str
) -> PrometheusPair:
    """Both Prometheus servers, running until `stack` closes, settled (first scrapes done)."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise SystemExit("prometheus is not installed (scripts/install-tools)")
    host = endpoint.removeprefix("http://")
    jobs = {
        "scraping": [{"job_name": "vllm", "scrape_interval": interval, "scrape_timeout": interval,
                      "static_configs": [{"targets": [host]}]}],
        "idle": [],
    }  # fmt: skip
    pids = {}
    for name, scrape_configs in jobs.items():
        config = work / f"prometheus-{name}.yml"
        config.write_text(json.dumps({"global": {"scrape_interval": "15s"},
                                      "scrape_configs": scrape_configs}))  # fmt: skip
        port = free_port()
        args = [
            prometheus, f"--config.file={config}", f"--storage.tsdb.path={work / name}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        ]  # fmt: skip
        pids[name] = stack.enter_context(
            started(f"prometheus-{name}", args, port, log_dir=work)
        ).pid
        wait_http(f"http://127.0.0.1:{port}/-/ready")
    time.sleep(7)  # the first scrape lands about 5 s after start; let both settle
    return PrometheusPair(pids, endpoint)


def page_reading_cost(page: bytes, repeat: int = 300) -> tuple[float, float]:
    """CPU seconds per read of the page in this process: the collector's reader (line filter +
    prometheus_client's parser on the kept lines) and prometheus_client's parser on it all."""
    from prometheus_client.parser import text_string_to_metric_families

    from collectors.model_servers.engines import VLLM
    from collectors.model_servers.page import PageReader

    text = page.decode()
    reader = PageReader(VLLM)
    started_at = time.process_time()
    for _ in range(repeat):
        reader.read(text)
    ours = (time.process_time() - started_at) / repeat
    started_at = time.process_time()
    for _ in range(repeat):
        for family in text_string_to_metric_families(text):
            list(family.samples)
    whole = (time.process_time() - started_at) / repeat
    return ours, whole


def report_page(contenders: list[Contender], scraping: Scraping, page: bytes) -> None:
    per_scrape = scraping.median()
    blackbox, one_line, with_page = contenders[1], contenders[2], contenders[3]
    ours = with_page.cpu_median()
    page_share = ours - one_line.cpu_median()
    series = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
    total, fewest, most = scraping.scrapes()
    print(f"\nvLLM-sized page: {series} series, {len(page)} bytes (medians; spread over rounds)")
    print(
        f"Prometheus scraping it directly: {1000 * per_scrape:.3f} ms CPU/scrape "
        f"({spread_ms(scraping.per_scrape())} over the {len(scraping.rounds)} rounds; "
        f"{total} scrapes, {fewest}-{most} a round; {1000 * scraping.overall():.3f} over the run)"
    )
    page_shares = [w - o for w, o in zip(with_page.rounds, one_line.rounds, strict=True)]
    print(f"afirgen /probe vllm + page:      {1000 * ours:.3f} ms CPU/scrape "
          f"({spread_ms(with_page.rounds)}; the page's share {1000 * page_share:.3f} ms, "
          f"by round {spread_ms(page_shares)})")  # fmt: skip
    print(f"ratio ours/Prometheus: {ours / per_scrape:.2f}x (whole probe), "
          f"{page_share / per_scrape:.2f}x (the page's share); target <= 2x")  # fmt: skip
    peers = blackbox.cpu_median() + per_scrape
    print(f"ratio ours/(blackbox probe + Prometheus scrape of the page): {ours / peers:.2f}x "
          "(what the same view costs with the peers)")  # fmt: skip
    if len(contenders) == 6:  # with --baseline: the earlier tree's rows, in the same rounds
        base_one, base_page = contenders[4], contenders[5]
        base = base_page.cpu_median()
        print(f"baseline /probe vllm + page:     {1000 * base:.3f} ms CPU/scrape "
              f"({base_page.spread()}; the page's share "
              f"{1000 * (base - base_one.cpu_median()):.3f} ms)")  # fmt: skip
        print(f"ratio baseline/Prometheus: {base / per_scrape:.2f}x (whole probe); "
              f"ours/baseline {ours / base:.2f}x")  # fmt: skip
    reader, whole = page_reading_cost(page)
    print(f"in-process read of the page: {1e6 * reader:.0f} us (line filter + parse), "
          f"{1e6 * whole:.0f} us (prometheus_client's parser on all of it)")  # fmt: skip


def report(contenders: list[Contender], rounds: int, per_round: int) -> None:
    print(f"{rounds} interleaved rounds x {per_round} probes, loopback endpoint\n")
    head = f"{'':32} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/probe':>13} {'rounds lo-hi':>12}"
    print(head)
    for c in contenders:
        cpu_ms = 1000 * c.cpu_median()
        print(
            f"{c.name:32} {1000 * c.p(0.5):8.3f} {1000 * c.p(0.99):8.3f} {cpu_ms:13.3f} "
            f"{c.spread():>12}"
        )
    ours_c, bb_c = contenders[0], contenders[1]
    print(
        "\nratio ours/blackbox (generic vs http module): "
        f"p50 {ours_c.p(0.5) / bb_c.p(0.5):.2f}x, "
        f"p99 {ours_c.p(0.99) / bb_c.p(0.99):.2f}x, "
        f"CPU/probe {ours_c.cpu_median() / bb_c.cpu_median():.2f}x"
    )


if __name__ == "__main__":
    raise SystemExit(main())
