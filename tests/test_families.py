"""exporter/families.py: merging same-name families and the namespace prefix."""

from __future__ import annotations

import pytest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import Format, encode
from exporter.families import merge_same_name, with_prefix


def _db(name: str) -> list:
    up = GaugeMetricFamily("db_up", "Up.", labels=["database"])
    up.add_metric([name], 1.0)
    queries = CounterMetricFamily("db_queries", "Queries.", labels=["database"])
    queries.add_metric([name], 5.0)
    return [up, queries]


def test_same_name_families_are_merged_and_unique_ones_pass_through_untouched():
    own = GaugeMetricFamily("system_load1", "Load.", value=0.5)
    families = [own, *_db("main"), *_db("replica")]
    merged = merge_same_name(families)
    assert [f.name for f in merged] == ["system_load1", "db_up", "db_queries"]
    assert merged[0] is own  # nothing to merge: no copy
    assert [s.labels["database"] for s in merged[1].samples] == ["main", "replica"]
    assert len(families[1].samples) == 1  # the collectors' families are not changed
    text = encode(merged, Format.TEXT).decode()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert parsed["db_queries"].type == "counter" and len(parsed["db_queries"].samples) == 2


def test_a_type_clash_keeps_the_first_family_only():
    gauge = GaugeMetricFamily("thing", "A gauge.", value=1.0)
    counter = CounterMetricFamily("thing", "A counter.", value=2.0)
    merged = merge_same_name([gauge, counter])
    assert len(merged) == 1 and merged[0].type == "gauge" and len(merged[0].samples) == 1


def test_the_prefix_renames_families_and_samples_and_leaves_the_originals():
    families = _db("main")
    renamed = with_prefix(families, "afirgen_")
    assert [f.name for f in renamed] == ["afirgen_db_up", "afirgen_db_queries"]
    assert renamed[1].samples[0].name == "afirgen_db_queries_total"
    assert renamed[1].samples[0].labels == {"database": "main"}
    assert families[0].name == "db_up" and families[0].samples[0].name == "db_up"
    text = encode(renamed, Format.OPENMETRICS).decode()
    assert 'afirgen_db_queries_total{database="main"} 5.0' in text
    with pytest.raises(ValueError, match="cannot start"):
        with_prefix(families, "9bad-")
