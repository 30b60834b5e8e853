"""The docs' metric tables are generated from the specs, and the specs are what collectors serve."""

from __future__ import annotations

import pytest

from collectors.base import Deadline
from collectors.catalog import CATALOG
from collectors.specs import FamilySet, MetricType, by_name, counter, gauge, histogram, info
from exporter.docs_tables import documents, render, specs_of, table, table_names


def test_every_table_is_up_to_date():
    for path in documents():
        text = path.read_text()
        assert render(text) == text, f"{path.name} is stale: run python -m exporter.docs_tables"


def test_every_collector_with_specs_has_a_table():
    tabled = {name for path in documents() for name in table_names(path.read_text())}
    for spec in CATALOG:
        if hasattr(spec.load(), "SPECS"):
            assert spec.name in tabled, f"no metrics table for {spec.name}"


def test_a_table_names_each_spec_once_with_its_type_and_labels():
    specs = specs_of("system")
    text = table(specs)
    for spec in specs:
        assert text.count(f"| `{spec.name}` | {spec.type.value} |") == 1
    assert "`mountpoint`, `fstype`, `device`" in text


def test_the_system_collector_serves_exactly_its_specs():
    module = next(spec for spec in CATALOG if spec.name == "system").load()
    result = module.build(None).run(Deadline.after(5))
    assert result.success
    declared = by_name(module.SPECS)
    for family in result.families:
        exposed = family.name + "_total" if family.type == "counter" else family.name
        spec = declared[exposed]
        assert spec.type.value == family.type
        assert family.documentation == spec.help
        for sample in family.samples:
            assert tuple(sample.labels) == spec.labels


def test_spec_names_follow_the_conventions():
    with pytest.raises(ValueError, match="_total"):
        counter("cache_evictions", "Evicted keys.")
    with pytest.raises(ValueError, match="_info"):
        info("model_server", "Version.")
    assert gauge("x_seconds", "X.", unit="seconds").family().unit == "seconds"
    # a unit the name does not carry is not announced (OpenMetrics would reject the family)
    assert gauge("x_percent", "X.", unit="seconds").family().unit == ""


def test_family_set_prefixes_the_target_label_and_keeps_first_use_order():
    requests = counter("model_server_requests_total", "Requests.", ["server", "status"])
    latency = histogram("model_server_latency_seconds", "Latency.", ["server"], unit="seconds")
    families = FamilySet("llm")
    families.histogram(latency, [("0.1", 1), ("+Inf", 3)], 0.9)
    families.add(requests, 2, "success")
    families.add(requests, 1, "failure")
    out = families.families()
    assert [f.name for f in out] == ["model_server_latency_seconds", "model_server_requests"]
    assert [(s.labels, s.value) for s in out[1].samples if s.name.endswith("_total")] == [
        ({"server": "llm", "status": "success"}, 2.0),
        ({"server": "llm", "status": "failure"}, 1.0),
    ]
    assert out[0].samples[-1].name == "model_server_latency_seconds_sum"
    assert out[0].samples[-1].value == 0.9
    with pytest.raises(TypeError):
        families.add(latency, 1.0)


def test_duplicate_names_with_different_specs_are_refused():
    with pytest.raises(ValueError, match="declared twice"):
        by_name([gauge("a", "A."), gauge("a", "Another A.")])
    assert by_name([gauge("a", "A."), gauge("a", "A.")])["a"].type is MetricType.GAUGE
