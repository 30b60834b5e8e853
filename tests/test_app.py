"""exporter/app.py over real HTTP: uvicorn on a loopback port, real requests with httpx."""

from __future__ import annotations

import concurrent.futures
import gzip
import ssl
import time

import bcrypt
import httpx
import pytest
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from starlette.applications import Starlette
from starlette.routing import Mount

from exporter.app import create_app, scrape_deadline
from exporter.config import ScrapeConfig, load_config
from exporter.state import Exporter
from tests.support import scrape_headers, serve_app
from tests.test_scrape import (  # noqa: F401
    CountingCollector,
    HungSourceCollector,
    RaisingCollector,
    silent_listener,
)
from tests.tls_certs import Authority

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def names(body: str, parser=parse_text) -> set[str]:
    return {f.name for f in parser(body)}


@pytest.fixture
def exporter():
    exp = Exporter(load_config({}, env={}), extra_collectors=[CountingCollector("c1")])
    yield exp
    exp.loaded.engine.close()


@pytest.fixture
def url(exporter):
    with serve_app(create_app(exporter)) as base:
        yield base


def test_metrics_answers_text_0_0_4_by_default(url):
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    found = names(response.text)
    assert {
        "system_cpu_percent",
        "counting_value",
        "afirgen_exporter_build_info",
        "afirgen_exporter_collector_success",
    } <= found


def test_backend_scrape_path_answers_without_redirect(url):
    response = httpx.get(f"{url}/prometheus/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert "system_memory_percent" in names(response.text)


def test_openmetrics_only_client_gets_openmetrics(url):
    response = httpx.get(
        f"{url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "system_cpu_percent" in names(response.text, parse_om)


def test_prometheus_accept_header_gets_the_cheaper_text_format_by_default(url):
    response = httpx.get(f"{url}/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_prefer_text_off_honours_openmetrics_preference():
    exp = Exporter(load_config({"web": {"prefer_text_format": False}}, env={}))
    with serve_app(create_app(exp)) as base:
        response = httpx.get(f"{base}/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    exp.loaded.engine.close()
    assert response.headers["content-type"].startswith("application/openmetrics-text")


def test_gzip_when_asked(url):
    raw = httpx.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip"}).read()
    with httpx.stream("GET", f"{url}/metrics", headers={"Accept-Encoding": "gzip"}) as response:
        assert response.headers["content-encoding"] == "gzip"
        body = b"".join(response.iter_raw())
    assert "system_cpu_percent" in names(gzip.decompress(body).decode())
    assert raw  # httpx decodes it transparently too
    plain = httpx.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip;q=0.0000", False),  # q=0 however it is written: not acceptable
        ("gzip;q=0e0", False),
        ("gzip;q=nan", False),
        ("*;q=0, gzip", True),  # gzip named itself wins over the wildcard
        ("gzip;q=0, *", False),
        ("br, gzip;q=0.5", True),
        ("gzip;q=bogus", True),  # a q that does not parse is ignored
    ],
)
def test_gzip_follows_the_q_values(url, accept_encoding, gzipped):
    with httpx.stream("GET", f"{url}/metrics", headers={"Accept-Encoding": accept_encoding}) as r:
        assert r.status_code == 200
        assert (r.headers.get("content-encoding") == "gzip") is gzipped


def test_head_has_headers_and_no_body(url):
    response = httpx.head(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.content == b""


def test_health_ready_and_404(url):
    assert httpx.get(f"{url}/-/healthy").status_code == 200
    assert httpx.get(f"{url}/-/ready").status_code == 200
    assert httpx.get(f"{url}/nope").status_code == 404


def test_collect_and_exclude_select_collectors(url):
    only = names(httpx.get(f"{url}/metrics", params={"collect[]": "counting"}).text)
    assert "counting_value" in only and "system_cpu_percent" not in only
    without = names(httpx.get(f"{url}/metrics", params={"exclude[]": "system"}).text)
    assert "system_cpu_percent" not in without and "process_cpu_seconds" in without


def test_unknown_collector_is_a_400_listing_valid_names(url):
    response = httpx.get(f"{url}/metrics", params={"collect[]": "nosuch"})
    assert response.status_code == 400
    assert "nosuch" in response.text and "system" in response.text and "counting" in response.text


def test_landing_page_shows_the_collector_summaries_as_html_not_markdown(url):
    page = httpx.get(f"{url}/").text
    assert "<code>databases:</code>" in page
    assert "`" not in page


def test_landing_page_shows_state_and_reason_but_no_secret():
    exp = Exporter(load_config({}, env={}), extra_collectors=[RaisingCollector("broken")])
    with serve_app(create_app(exp)) as base:
        httpx.get(f"{base}/metrics")
        page = httpx.get(f"{base}/")
    exp.loaded.engine.close()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "broken" in page.text and "down (error)" in page.text
    assert "hunter2" not in page.text
    assert 'href="/metrics"' in page.text


def test_probe_scrapes_one_target_and_rejects_unknown_ones(url):
    response = httpx.get(f"{url}/probe", params={"target": "c1"})
    assert response.status_code == 200
    got = {s.name: s.value for f in parse_text(response.text) for s in f.samples}
    assert got["probe_success"] == 1.0 and got["counting_value"] == 42.0
    assert "system_cpu_percent" not in got
    bad = httpx.get(f"{url}/probe", params={"target": "http://evil.example/"})
    assert bad.status_code == 400 and "c1" in bad.text
    assert httpx.get(f"{url}/probe").status_code == 400
    long = httpx.get(f"{url}/probe", params={"target": "x" * 5000})
    assert long.status_code == 400 and len(long.text) < 300


def test_probe_with_two_targets_is_refused_rather_than_picking_one(url):
    """blackbox_exporter reads the first ?target=, Starlette's get() the last: neither is safe
    to guess, so two are a 400 (as in a hand-made URL or a relabelling mistake)."""
    both = httpx.get(f"{url}/probe", params=[("target", "c1"), ("target", "system")])
    assert both.status_code == 400
    assert "one ?target=" in both.text


def test_deadline_header_bounds_a_hung_source(silent_listener):  # noqa: F811
    exp = Exporter(
        load_config({"scrape": {"timeout_offset_seconds": 0.1}}, env={}),
        extra_collectors=[HungSourceCollector(silent_listener)],
    )
    with serve_app(create_app(exp)) as base:
        started = time.monotonic()
        response = httpx.get(f"{base}/metrics", headers=scrape_headers(0.6), timeout=10)
        elapsed = time.monotonic() - started
    exp.loaded.engine.close()
    assert response.status_code == 200
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parse_text(response.text)
        for s in f.samples
    }
    assert (
        got[("afirgen_exporter_collector_success", (("collector", "hung"), ("target", "hung")))]
        == 0
    )
    assert ("system_cpu_percent", ()) in got
    assert elapsed < 5.0


def test_eight_concurrent_http_scrapes_collect_once():
    slow = CountingCollector("slow", delay=0.5)
    exp = Exporter(load_config({}, env={}), extra_collectors=[slow])
    with serve_app(create_app(exp)) as base, concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda i: (
                    httpx.get(
                        f"{base}/metrics",
                        params={"collect[]": "counting"},
                        headers={"Accept-Encoding": "gzip" if i % 2 else "identity"},
                        timeout=10,
                    ).status_code
                ),
                range(8),
            )
        )
    exp.loaded.engine.close()
    assert codes == [200] * 8
    assert slow.calls == 1


def test_scrape_deadline_from_header():
    settings = ScrapeConfig(
        timeout_offset_seconds=0.25,
        default_timeout_seconds=10,
        max_timeout_seconds=30,
        min_timeout_seconds=0,
    )
    assert 9.7 < scrape_deadline(None, settings).remaining() <= 9.75
    assert 4.7 < scrape_deadline("5", settings).remaining() <= 4.75
    assert 29.7 < scrape_deadline("600", settings).remaining() <= 29.75
    assert 9.7 < scrape_deadline("garbage", settings).remaining() <= 9.75
    assert 0.09 < scrape_deadline("0.2", settings).remaining() <= 0.1  # never below half


def test_scrape_deadline_raises_a_tiny_header_to_the_minimum():
    settings = ScrapeConfig(timeout_offset_seconds=0.25, min_timeout_seconds=2)
    assert 1.7 < scrape_deadline("0.001", settings).remaining() <= 1.75
    assert 2.7 < scrape_deadline("3", settings).remaining() <= 2.75  # above it: as asked
    assert 0.2 < scrape_deadline("0.001", ScrapeConfig()).remaining() <= 0.25  # default 0.5 s


def test_mounted_in_another_app_answers_under_the_mount_without_redirect(exporter):
    outer = Starlette(routes=[Mount("/prometheus", app=create_app(exporter))])
    with serve_app(outer) as base:
        response = httpx.get(f"{base}/prometheus/metrics", follow_redirects=False)
        page = httpx.get(f"{base}/prometheus/")
    assert response.status_code == 200 and "counting_value" in names(response.text)
    assert 'href="/prometheus/metrics"' in page.text


def test_basic_auth_with_bcrypt_hashes():
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=4)).decode()
    exp = Exporter(load_config({"web": {"basic_auth_users": {"prom": hashed}}}, env={}))
    with serve_app(create_app(exp)) as base:
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert httpx.get(f"{base}/metrics", auth=("prom", "wrong")).status_code == 401
        assert httpx.get(f"{base}/metrics", auth=("other", "s3cret-pass")).status_code == 401
        ok = httpx.get(f"{base}/metrics", auth=("prom", "s3cret-pass"))
        again = httpx.get(f"{base}/metrics", auth=("prom", "s3cret-pass"))
        denied = httpx.get(f"{base}/metrics", headers={"Authorization": "Basic !!!"})
    exp.loaded.engine.close()
    assert ok.status_code == 200 and again.status_code == 200
    assert denied.status_code == 401 and "www-authenticate" in denied.headers


def test_tls(tmp_path):
    ca = Authority(tmp_path, "ca")
    cert, key = ca.issue("server", client=False)
    config = load_config({"web": {"tls_cert_file": str(cert), "tls_key_file": str(key)}}, env={})
    exp = Exporter(config)
    with serve_app(
        create_app(exp), ssl_certfile=config.web.tls_cert_file, ssl_keyfile=config.web.tls_key_file
    ) as base:
        assert base.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(ca.cert))
        response = httpx.get(f"{base}/metrics", verify=trusted)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/metrics")  # not trusted without the CA
    exp.loaded.engine.close()
    assert response.status_code == 200


def test_post_reload_swaps_good_config_and_refuses_bad(tmp_path):
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump({"collectors": {"system": {"enabled": True}}}))
    from exporter.config import read_config

    exp = Exporter(read_config(path))
    with serve_app(create_app(exp, lifecycle=True)) as base:
        assert "system_cpu_percent" in names(httpx.get(f"{base}/metrics").text)
        path.write_text(yaml.safe_dump({"collectors": {"system": {"enabled": False}}}))
        assert httpx.post(f"{base}/-/reload").status_code == 200
        assert "system_cpu_percent" not in names(httpx.get(f"{base}/metrics").text)
        path.write_text("collectors: {system: {enabeld: true}}\n")
        refused = httpx.post(f"{base}/-/reload")
        body = httpx.get(f"{base}/metrics").text
    exp.loaded.engine.close()
    assert refused.status_code == 400 and "collectors.system.enabeld" in refused.text
    got = {s.name: s.value for f in parse_text(body) for s in f.samples}
    assert "system_cpu_percent" not in got  # the previous good config still serves
    assert got["afirgen_exporter_config_last_reload_successful"] == 0.0


def test_a_refused_reload_is_logged_on_one_line_naming_every_problem(tmp_path, caplog):
    """One log record, one line: log shippers cut a message at its newlines."""
    path = tmp_path / "exporter.yml"
    path.write_text("{}\n")
    from exporter.config import read_config

    exp = Exporter(read_config(path))
    path.write_text("collectors: {system: {enabeld: true}}\nscrape: {gzip_level: 0}\n")
    with caplog.at_level("ERROR", logger="afirgen_exporter"):
        with serve_app(create_app(exp, lifecycle=True)) as base:
            assert httpx.post(f"{base}/-/reload").status_code == 400
    exp.loaded.engine.close()
    [record] = [r for r in caplog.records if "reload refused" in r.getMessage()]
    message = record.getMessage()
    assert "\n" not in message
    assert "collectors.system.enabeld: unknown key" in message
    assert "scrape.gzip_level: must be 1-9" in message


def test_service_discovery_lists_probe_targets():
    exp = Exporter(load_config({}, env={}), extra_collectors=[CountingCollector("alpha")])
    with serve_app(create_app(exp)) as base:
        groups = httpx.get(f"{base}/sd").json()
    exp.loaded.engine.close()
    assert groups == [{"targets": ["alpha"], "labels": {"__meta_afirgen_collector": "counting"}}]


def test_reload_endpoint_is_403_unless_the_lifecycle_api_is_enabled(tmp_path):
    from exporter.config import read_config

    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump({"collectors": {"system": {"enabled": True}}}))
    exp = Exporter(read_config(path))
    with serve_app(create_app(exp)) as base:
        path.write_text(yaml.safe_dump({"collectors": {"system": {"enabled": False}}}))
        # what a cross-site HTML form would send
        form = httpx.post(
            f"{base}/-/reload",
            data={"a": "b"},
            headers={"Origin": "http://evil.example"},
        )
        put = httpx.put(f"{base}/-/reload")
        body = httpx.get(f"{base}/metrics").text
    exp.loaded.engine.close()
    assert form.status_code == put.status_code == 403
    assert "--web.enable-lifecycle" in form.text
    assert "system_cpu_percent" in names(body)  # nothing was reloaded


@pytest.mark.parametrize(
    "path", ["/metrics/", "/prometheus/metrics/", "/probe/", "/-/healthy/", "/sd/", "//metrics"]
)
def test_trailing_slash_is_a_404_never_a_redirect_to_the_host_header(url, path):
    response = httpx.get(f"{url}{path}", headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404
    assert "location" not in response.headers


def test_trailing_slash_under_a_mount_is_a_404_too(exporter):
    outer = Starlette(routes=[Mount("/prometheus", app=create_app(exporter))])
    with serve_app(outer) as base:
        response = httpx.get(
            f"{base}/prometheus/metrics/", headers={"Host": "evil.example"}, follow_redirects=False
        )
    assert response.status_code == 404 and "location" not in response.headers


def test_unknown_collectors_are_echoed_short_and_few(url):
    names_sent = [f"n{i}-" + "x" * 300 for i in range(40)]
    response = httpx.get(f"{url}/metrics", params=[("collect[]", n) for n in names_sent])
    assert response.status_code == 400
    assert len(response.text) < 1000
    assert "and 35 more" in response.text
    assert "'n0-" + "x" * 61 + "'..." in response.text
    assert "system" in response.text  # the valid names are still listed
    one = httpx.get(f"{url}/metrics", params={"exclude[]": "nosuch"})
    assert one.status_code == 400 and "'nosuch'" in one.text and "more" not in one.text
