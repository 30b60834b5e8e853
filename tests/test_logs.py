"""exporter/logs.py and the state-change log lines: quiet at INFO, redacted everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
from prometheus_client.metrics_core import GaugeMetricFamily

from collectors.base import Deadline, ScrapeContext, SourceCollector
from exporter import logs
from exporter.exposition import Format
from exporter.scrape import ScrapeEngine, Unit
from tests.loopback_sources import slow_http_server
from tests.support import free_port, running_exporter, scrape_headers

SECRETS = ("key-4f1d9a", "tok-8c2e77")
HEADERS = scrape_headers(5)


class PortCollector(SourceCollector):
    """Up when something listens on its loopback port (a real connect), down (refused) when not."""

    collector = "port"

    def __init__(self, port: int) -> None:
        super().__init__("p")
        self.port = port

    def fetch(self, ctx: ScrapeContext):
        with socket.create_connection(("127.0.0.1", self.port), timeout=ctx.deadline.timeout()):
            pass
        yield GaugeMetricFamily("port_open", "Something listens.", value=1.0)


def test_one_line_per_state_change_of_a_target_not_one_per_scrape(caplog):
    port = free_port()
    engine = ScrapeEngine([Unit("port", "p", PortCollector(port))])

    def scrapes(n: int) -> None:
        for _ in range(n):
            asyncio.run(engine.render(engine.units, Deadline.after(2), Format.TEXT, False))

    caplog.set_level(logging.INFO)
    scrapes(5)  # refused five times: one line
    listener = socket.create_server(("127.0.0.1", port))
    scrapes(5)  # up five times: one line
    listener.close()
    scrapes(5)  # refused again: one line
    engine.close()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("afirgen_exporter")]
    assert len(lines) == 3, lines
    assert lines[0].startswith("target down: ") and "reason=refused" in lines[0]
    assert caplog.records[0].levelno == logging.WARNING
    assert lines[1] == "target up: collected again collector=port target=p"
    assert lines[2].startswith("target down: ") and "reason=refused" in lines[2]


def test_redact_line_masks_query_values_tokens_and_passwords():
    text = (
        "GET http://127.0.0.1:8001/health?api_key=key-4f1d9a&token=tok-8c2e77&x=1 "
        "redis://app:s3cret-pw@127.0.0.1:6379/0 Authorization: Bearer abcdef123456"
    )
    masked = logs.redact_line(text)
    for secret in (*SECRETS, "s3cret-pw", "abcdef123456"):
        assert secret not in masked
    assert "http://127.0.0.1:8001/health?api_key=***&token=***&x=***" in masked
    assert "redis://app:***@127.0.0.1:6379/0" in masked


@contextlib.contextmanager
def formatted_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose lines go only to a stream, through the exporter's redacting formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.RedactingFormatter(logs.FORMAT))
    logger = logging.getLogger("afirgen_exporter.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_the_formatter_redacts_arguments_and_tracebacks():
    with formatted_log() as (logger, stream):
        try:
            raise ValueError("bad answer from http://h:1/m?api_key=key-4f1d9a")
        except ValueError:
            logger.exception("probe of %s failed", "http://h:1/m?token=tok-8c2e77")
    text = stream.getvalue()
    assert "probe of http://h:1/m?token=*** failed" in text
    assert "ValueError: bad answer" in text
    for secret in SECRETS:
        assert secret not in text


def test_configure_holds_http_clients_at_warning_unless_debug():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("info", stream)
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING
        logs.configure("debug", stream)
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in logs.CHATTY:
            logging.getLogger(name).setLevel(logging.NOTSET)


def _log_of(url: str) -> Path:
    port = url.rsplit(":", 1)[1]
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"exporter-{port}.log"


def test_a_real_exporter_logs_state_changes_only_and_never_a_query_secret(tmp_path):
    port = free_port()
    config = tmp_path / "exporter.yml"
    config.write_text(
        "model_servers:\n"
        "  - name: llm\n"
        "    kind: generic\n"
        f"    url: http://127.0.0.1:{port}/health?api_key={SECRETS[0]}&token={SECRETS[1]}\n"
    )

    def scrapes(url: str, n: int, up: float) -> None:
        for _ in range(n):
            body = httpx.get(f"{url}/metrics", headers=HEADERS, timeout=10).text
            assert f'model_server_up{{server="llm"}} {up}' in body

    with running_exporter(config) as (url, _):
        log = _log_of(url)
        started = len(log.read_text().splitlines())
        scrapes(url, 6, 0.0)  # nothing listens: refused
        with slow_http_server(0.0, port):
            scrapes(url, 6, 1.0)  # a healthy server: probed six times
        scrapes(url, 6, 0.0)
        text = log.read_text()
    during = text.splitlines()[started:]
    during = [line for line in during if "uvicorn" not in line and "Shutting down" not in line]
    transitions = [line for line in during if "target down" in line or "target up" in line]
    assert len(transitions) == 3, during
    assert "reason=refused" in transitions[0] and "target up" in transitions[1]
    assert "HTTP Request" not in text  # httpx's per-request lines stay below INFO
    for secret in SECRETS:
        assert secret not in text


def test_a_database_that_stays_down_logs_one_single_line(tmp_path):
    # a real PostgreSQL driver against a closed port: SQLAlchemy's text spans three lines
    config = tmp_path / "exporter.yml"
    config.write_text(
        "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
        "databases:\n"
        f"  - name: gone\n    url: postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test\n"
    )
    with running_exporter(config) as (url, _):
        log = _log_of(url)
        for _ in range(5):
            body = httpx.get(f"{url}/metrics", headers=HEADERS, timeout=10).text
            assert 'db_up{database="gone"} 0.0' in body
        lines = log.read_text().splitlines()
    about = [line for line in lines if "target=gone" in line]
    assert len(about) == 1, lines
    assert "WARNING" in about[0] and "reason=refused" in about[0]
    assert "Is the server running" in about[0]  # the driver's second line, on the same line
    assert not [line for line in lines if line.startswith(("\t", "(Background", " "))], lines


def test_the_formatter_puts_a_multi_line_message_on_one_line():
    with formatted_log() as (logger, stream):
        logger.warning("failed: %s", "first\n\tsecond\r\nthird")
    assert stream.getvalue().endswith("failed: first second third\n")
