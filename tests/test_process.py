"""The exporter's own process families against prometheus_client's ProcessCollector."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys

from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector

from collectors.process import ExporterProcessCollector, GCFamilies, ProcessFamilies


def by_name(families):
    return {
        f.name: (f.type, f.documentation, [(s.name, s.labels) for s in f.samples]) for f in families
    }


def values(families):
    return {s.name: s.value for f in families for s in f.samples}


def test_same_families_and_values_as_prometheus_client():
    theirs = list(ProcessCollector(registry=None).collect())
    ours = ProcessFamilies().collect()
    theirs_again = list(ProcessCollector(registry=None).collect())
    assert [f.name for f in ours] == [f.name for f in theirs]
    assert by_name(ours) == by_name(theirs)
    mine, before, after = values(ours), values(theirs), values(theirs_again)
    for name in ("process_max_fds", "process_start_time_seconds"):
        assert mine[name] == before[name]
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert before[name] * 0.5 <= mine[name] <= after[name] * 1.5 + 4096


def test_the_limit_follows_setrlimit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = min(soft, 512)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
    try:
        ours = values(ProcessFamilies().collect())
        theirs = values(ProcessCollector(registry=None).collect())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert ours["process_max_fds"] == theirs["process_max_fds"] == float(lower)


def test_another_process_and_a_gone_one():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid = str(child.pid)
        ours = ProcessFamilies(pid).collect()
        theirs = list(ProcessCollector(pid=lambda: pid, registry=None).collect())
        assert by_name(ours) == by_name(theirs)
        assert values(ours)["process_max_fds"] == values(theirs)["process_max_fds"]
    finally:
        child.kill()
        child.wait()
    assert ProcessFamilies(pid).collect() == []  # gone: nothing rather than stale numbers


def test_collector_serves_process_gc_and_platform_families():
    names = {f.name for f in ExporterProcessCollector().fetch(None)}  # type: ignore[arg-type]
    assert {
        "process_cpu_seconds",
        "process_open_fds",
        "python_gc_collections",
        "python_info",
    } <= names


def test_gc_families_are_gc_collectors():
    theirs_collector = GCCollector(registry=CollectorRegistry(auto_describe=False))
    gc.collect()
    gc.disable()  # no collection between the two readings
    try:
        ours = GCFamilies().collect()
        theirs = list(theirs_collector.collect())
    finally:
        gc.enable()
    assert ours == theirs  # names, help, types, samples (the counts stay ints)
    assert [type(s.value) for f in ours for s in f.samples] == [
        type(s.value) for f in theirs for s in f.samples
    ]


def test_the_kept_stat_descriptor_is_opened_again_when_it_fails():
    families = ProcessFamilies()
    assert len(families.collect()) == 6
    os.close(families._stat._fd)  # closed under it: read anew, not left out
    ours = values(families.collect())
    theirs = values(ProcessCollector(registry=None).collect())
    assert ours["process_start_time_seconds"] == theirs["process_start_time_seconds"]
    assert ours["process_virtual_memory_bytes"] > 0
    families.close()
    assert len(families.collect()) == 6
