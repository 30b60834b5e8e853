"""The requests of one scrape of one server, over its client's connection pool, within the
deadline."""

from __future__ import annotations

import json
import ssl
import time
import zlib
from typing import Any

import httpcore

from collectors.base import Deadline
from collectors.model_servers.client import Client, decoder
from collectors.model_servers.readiness import Answer, BodyMismatch, ProbeFailed
from collectors.model_servers.urls import request_url

#: A health or model list answer larger than this is not what any documented API returns.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: What a kept-alive connection closed by the server under our request looks like (sent once
#: more on a new connection). Timeouts are not among them: the server may just be slow.
RETRIED = (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError)
#: Every way a request can end without an answer (httpcore's exceptions share no base class; a
#: compressed body that does not decompress counts as a broken connection).
NO_ANSWER = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    httpcore.ConnectionNotAvailable,
    zlib.error,
)
#: A request gives up this much (at most a tenth of what is left) before the scrape deadline.
DEADLINE_MARGIN_SECONDS = 0.05


def transport_outcome(exc: BaseException) -> str:
    """Why a request got no answer, from httpcore's exception and what it wraps."""
    if isinstance(exc, httpcore.TimeoutException):
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

    def __init__(
        self,
        client: Client,
        base_url: str,
        deadline: Deadline,
        *,
        max_body: int = MAX_BODY_BYTES,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.max_body = max_body
        self.headers = headers  # added to the client's own (the metrics page asks for text)
        self.base_url = base_url  # used as written for the liveness URL (generic: the URL)
        self.deadline = deadline
        self.outcomes: list[str] = []
        self.latencies: list[float] = []
        self.problems: list[str] = []
        self.timed_out = False

    def get(self, path: str, *, base_url: str | None = None) -> Answer:
        """GET `path` within what is left of the deadline; ProbeFailed without an answer.

        A request that fails on a kept-alive connection the server has just closed (its idle
        timeout raced our request) is sent once more, on a new connection: that is not the
        server failing. A failure on a fresh connection is.
        """
        if self.timed_out or self.deadline.expired():  # the budget is spent: ask nothing more
            raise ProbeFailed("timeout", path)
        url = request_url(base_url or self.base_url, path)
        started = time.perf_counter()
        dialled = self.client.network.dialled()
        try:
            try:
                status, body = self._send(url)
            except RETRIED:
                reused = self.client.network.dialled() == dialled  # no new connection for it
                if not reused or self.deadline.expired():
                    raise
                started = time.perf_counter()
                status, body = self._send(url)
        except NO_ANSWER as exc:
            outcome = transport_outcome(exc)
            self.timed_out = outcome == "timeout"
            self.outcomes.append(outcome)
            self.problems.append(f"{outcome} on {path or '/'}")
            raise ProbeFailed(outcome, path) from exc
        self.latencies.append(time.perf_counter() - started)
        self.outcomes.append(f"{status // 100}xx")
        answer = Answer(status, bytes(body), len(self.outcomes) - 1)
        if len(body) > self.max_body:
            self.mismatch(answer, path)
        elif status != 200:
            self.problems.append(f"http_{status // 100}xx on {path or '/'}")
        return answer

    def _send(self, url: str) -> tuple[int, bytearray]:
        """One GET: status and body (cut past `max_body`)."""
        # end a little before the deadline, so the timeout is counted here and the collection
        # still answers before the scrape engine gives up on it
        left = self.deadline.remaining()
        timeout = max(0.001, left - min(DEADLINE_MARGIN_SECONDS, left / 10))

        # every connect, read and write is capped by `until`: the whole request, headers and
        # body, ends by then however slowly the server sends
        prepared = self.client.prepare(url, self.headers)
        limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        with (
            self.client.network.until(time.monotonic() + timeout),
            self.client.pool.stream(
                "GET", prepared.url, headers=prepared.headers, extensions={"timeout": limits}
            ) as response,
        ):
            body = bytearray()
            decompress = decoder(response.headers)
            for chunk in response.iter_stream():
                if decompress is not None:
                    chunk = decompress.decompress(chunk, self.max_body + 1 - len(body))
                body += chunk
                if len(body) > self.max_body:
                    break
            return response.status, body

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
