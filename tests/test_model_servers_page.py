"""The engine metrics page reader reads the wanted sample lines exactly as prometheus_client
reads them, tricky lines included, makes of them the numbers prometheus_client's parse gives
(on a first read and on a later one, from remembered series), and refuses broken ones."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.model_servers import VLLM_PAGE
from collectors.model_servers.engines import ENGINES
from collectors.model_servers.page import Numbers, PageError, PageReader, parse_sample
from tests.engine_pages import Traffic, page
from tests.model_server_engines import ENGINE_KINDS, MODEL


@pytest.mark.parametrize("kind", ENGINE_KINDS)
def test_the_reader_reads_exactly_the_wanted_samples_prometheus_client_reads(kind):
    traffic = Traffic()
    traffic.serve(MODEL, success=3, failure=2)
    traffic.serve("ner", success=1)
    text = page(kind, traffic) if kind != "tgi" else page(kind, _one_model(traffic))
    reader = PageReader(ENGINES[kind])
    assert_reads_like_prometheus_client(reader, text)


#: Sample lines the text format allows that the stand-ins' pages do not all show.
TRICKY = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a \\"quoted\\" \\\\ back\\nslash",engine="0"} 3
vllm:num_requests_running{ model_name = "spaced" , engine="1" , } 4 1700000000000
vllm:num_requests_running{model_name="{braces} and, commas=yes"} +Inf
vllm:num_requests_waiting{model_name="x"} NaN
vllm:num_requests_waiting 1.5e3
vllm:kv_cache_usage_perc{} -0.0
"""


def test_the_reader_reads_tricky_lines_like_prometheus_client():
    assert_reads_like_prometheus_client(PageReader(ENGINES["vllm"]), TRICKY)


def assert_reads_like_prometheus_client(reader: PageReader, text: str) -> None:
    # the full parse, with the TYPE lines, names a counter's sample `_total` even where the
    # engine (Triton, TGI) does not; the reader looks both names up
    wanted = set(reader.by_sample)
    full = [
        (s.name.removesuffix("_total"), s.labels, s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name in wanted
    ]
    lines = reader.wanted_lines(text)[0]
    assert [parse_sample(line)[0] for line, _ in lines] == [name for _, name in lines]
    # parsed alone, then by the reader twice: the second time its label sets are remembered
    for ours in (
        [parse_sample(line) for line, _ in lines],
        *([(name, *reader.sample(line, name)) for line, name in lines] for _ in range(2)),
    ):
        ours = [(name.removesuffix("_total"), labels, value) for name, labels, value in ours]
        assert len(ours) == len(full) > 0
        for mine, theirs in zip(ours, full, strict=True):
            assert mine[:2] == theirs[:2]
            assert mine[2] == theirs[2] or (math.isnan(mine[2]) and math.isnan(theirs[2]))


@pytest.mark.parametrize(
    "line",
    [
        'vllm:num_requests_running{model_name="x" 1',
        "vllm:num_requests_running{model_name=x} 1",
        "vllm:num_requests_running{} one",
        "vllm:num_requests_running 1 2 3",
        "vllm:num_requests_running",
    ],
)
def test_broken_lines_are_refused(line):
    with pytest.raises(PageError):
        parse_sample(line)


def _one_model(traffic: Traffic) -> Traffic:
    traffic.models.pop("ner")
    return traffic


def test_the_reader_reads_an_mlserver_page_like_prometheus_client():
    traffic = Traffic(kserve_flavour="mlserver")
    traffic.serve(MODEL, success=3, failure=2)
    traffic.serve("ner", success=1)
    assert_reads_like_prometheus_client(PageReader(ENGINES["kserve"]), page("kserve", traffic))


def reference_read(reader: PageReader, text: str) -> tuple[dict[str, Numbers], Numbers]:
    """What the reader must make of `text`, from prometheus_client's parse of the whole page:
    every wanted sample, filtered, by model, in base units (the reader's steps, written out)."""
    by_model: dict[str, Numbers] = {}
    unnamed = Numbers()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            wanted = reader.by_sample.get(s.name) or reader.by_sample.get(
                s.name.removesuffix("_total"), []
            )
            for read, part in wanted:
                if read.keep is not None and not read.keep(s.labels):
                    continue
                if read.model_label is None:
                    numbers = unnamed
                else:
                    numbers = by_model.setdefault(s.labels.get(read.model_label, ""), Numbers())
                if math.isnan(s.value):
                    continue
                if part == "value":
                    numbers.add(read.into, s.value * read.scale)
                elif part == "bucket":
                    bound = float(s.labels.get("le", "+Inf"))
                    key = round(bound * read.scale, 12) if math.isfinite(bound) else math.inf
                    buckets = numbers.histogram(read.into).buckets
                    buckets[key] = buckets.get(key, 0.0) + s.value
                elif part == "sum":
                    numbers.histogram(read.into).total += s.value * read.scale
    return by_model, unnamed


def _pages() -> list[tuple[str, str]]:
    traffic = Traffic()
    traffic.serve(MODEL, success=3, failure=2)
    traffic.serve("ner", success=1)
    pages = [(k, page(k, traffic if k != "tgi" else _one_model(traffic))) for k in ENGINE_KINDS]
    mlserver = Traffic(kserve_flavour="mlserver")
    mlserver.serve(MODEL, success=3, failure=2)
    namespace: dict[str, Any] = {}
    exec(VLLM_PAGE, namespace)  # the benchmark's vLLM-sized page
    vllm_sized = namespace["vllm_sized_page"]().decode()
    nan_only = (
        '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="idle"} NaN\n'
    )
    return [*pages, ("kserve", page("kserve", mlserver)), ("vllm", TRICKY), ("vllm", vllm_sized),
            ("vllm", nan_only)]  # fmt: skip


@pytest.mark.parametrize(("kind", "text"), _pages())
def test_reading_a_page_gives_the_numbers_of_prometheus_clients_parse(kind, text):
    """Read twice: the second time every series' steps are remembered (the fast path)."""
    reader = PageReader(ENGINES[kind])
    expected = reference_read(reader, text)
    assert expected[0] or expected[1].values or expected[1].histograms
    for _ in range(2):
        by_model, unnamed, known = reader.read(text)
        assert (by_model, unnamed) == expected and known


def test_a_bucket_bound_that_is_not_a_number_is_a_page_error():
    text = 'vllm:time_to_first_token_seconds_bucket{model_name="m",le="soon"} 3\n'
    with pytest.raises(PageError, match="bad bucket bound"):
        PageReader(ENGINES["vllm"]).read(text)
