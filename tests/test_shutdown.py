"""SIGTERM to a real exporter process exits within its grace period even with a stuck source."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

from exporter.scrape import CLOSE_SECONDS
from tests.loopback_sources import SilentListener
from tests.support import running_exporter, scrape_headers, wait_until

#: uvicorn's graceful shutdown for requests in flight (exporter/server.py), then the engine's
#: second for collections in flight and its second for closing the sources.
GRACE_SECONDS = 5 + 1 + CLOSE_SECONDS
#: Python's own start-up and teardown on a loaded machine.
SLACK_SECONDS = 2.0


def test_sigterm_exits_within_the_grace_period_with_a_stuck_source_and_a_scrape_in_flight(
    tmp_path: Path,
):
    with SilentListener() as silent:
        config = tmp_path / "exporter.yml"
        # a Redis that accepts and never answers: the collector's read waits for up to 60 s
        # while holding its connection lock, which its close() takes too
        config.write_text(
            "collectors:\n  system: {enabled: false}\n  process: {enabled: false}\n"
            "redis:\n"
            "  - name: stuck\n"
            f"    url: redis://127.0.0.1:{silent.port}/0\n"
            "    read_timeout_seconds: 60\n"
        )
        answers: list[tuple[int, str]] = []

        with running_exporter(config) as (url, proc):

            def scrape() -> None:
                try:
                    answer = httpx.get(
                        f"{url}/metrics",
                        headers=scrape_headers(60),
                        timeout=90,
                    )
                    answers.append((answer.status_code, answer.text))
                except httpx.HTTPError as exc:
                    answers.append((0, type(exc).__name__))

            client = threading.Thread(target=scrape)
            client.start()
            wait_until(lambda: silent.accepted >= 1, what="the collector to connect")
            time.sleep(0.5)  # the INFO request is written and the read is waiting
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=GRACE_SECONDS + 30)
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - started
            exited = proc.poll()
            client.join(timeout=30)
            print(f"SIGTERM to exit: {elapsed:.2f} s (grace {GRACE_SECONDS:.1f} s)")
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"exporter-{url.rsplit(':', 1)[1]}.log"
        text = log.read_text()
    assert exited is not None, "the exporter was still running 30 s past its grace period"
    assert elapsed <= GRACE_SECONDS + SLACK_SECONDS, f"exit took {elapsed:.1f} s"
    assert exited in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    # the scrape in flight was answered at once, the stuck target reported down (timeout)
    # instead of being cut by uvicorn's graceful timeout with a CancelledError traceback
    assert len(answers) == 1 and answers[0][0] == 200, answers
    assert (
        'afirgen_exporter_collector_success{collector="redis",target="stuck"} 0.0' in answers[0][1]
    )
    up = [line for line in answers[0][1].splitlines() if line.startswith("cache_up{")]
    assert len(up) == 1 and up[0].endswith(" 0.0"), up
    assert "Traceback" not in text and " ERROR " not in text, text
