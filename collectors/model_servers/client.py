"""The target's httpx client: auth headers, TLS settings, keep-alive, a whole-request deadline.

`Connection` makes the client on the first fetch, not when the collector is built (loading a
config of thousands of servers builds no client and no TLS context), and replaces it when a run
is abandoned: the stuck run's sockets are shut down and the next run dials afresh. Its lock
only guards swapping the client, never I/O, so `close()` cannot wait on a stuck fetch.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass

import httpcore
import httpx

from collectors.model_servers.deadline import DeadlineBackend
from collectors.model_servers.target import Target, no_key_password
from collectors.model_servers.urls import mask_urls_in_httpx_logs

#: Idle connections are dropped after this long: before the idle timeouts servers commonly
#: close them at (gunicorn 2 s, uvicorn and so vLLM 5 s), so a request is not sent on a socket
#: the server is closing. A scrape's own requests share its connection; scrapes further apart
#: dial afresh. (A server that closes even sooner is covered by one retry, see `probe`.)
KEEPALIVE_EXPIRY_SECONDS = 1.5
MAX_CONNECTIONS = 4
MAX_KEEPALIVE_CONNECTIONS = 2


def ssl_context(target: Target) -> ssl.SSLContext:
    """Verification as configured: the system CAs or `ca_file`, optionally a client cert."""
    context = ssl.create_default_context(cafile=target.ca_file)
    if not target.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if target.cert_file:
        context.load_cert_chain(target.cert_file, target.key_file, password=no_key_password)
    return context


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool that uses `DeadlineBackend` for its sockets."""

    def __init__(self, context: ssl.SSLContext, backend: DeadlineBackend) -> None:
        super().__init__(verify=context, trust_env=False)
        # httpx has no way to hand its pool a network backend: build the pool it would build,
        # with ours. If a later httpx stops keeping its pool in `_pool`, fail loudly here.
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("httpx.HTTPTransport no longer keeps an httpcore pool in _pool")
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
            network_backend=backend,
        )


@dataclass(frozen=True)
class Client:
    """One client and the backend its sockets go through."""

    http: httpx.Client
    backend: DeadlineBackend

    def discard(self) -> None:
        """Cut off whatever request is in flight on it and close it; never blocks."""
        self.backend.cut_off()
        self.http.close()


def make_client(target: Target) -> Client:
    """The target's client: auth headers, TLS settings, keep-alive, the deadline backend."""
    headers = {"User-Agent": "afirgen-exporter", "Accept": "application/json"}
    headers.update(target.headers)
    if target.bearer_token:
        headers["Authorization"] = f"Bearer {target.bearer_token.reveal()}"
    mask_urls_in_httpx_logs()  # httpx logs every request's URL at INFO
    backend = DeadlineBackend()
    http = httpx.Client(
        headers=headers,
        follow_redirects=False,
        trust_env=False,  # never send a probe through a proxy from the environment
        transport=DeadlineTransport(ssl_context(target), backend),
    )
    return Client(http, backend)


class Connection:
    """The target's client, made on first use and replaced when a run is abandoned."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._lock = threading.Lock()  # guards the fields only: never held across I/O
        self._client: Client | None = None
        self._closed = False

    def client(self) -> Client:
        """The current client, made now if there is none; RuntimeError once closed."""
        with self._lock:
            current, closed = self._client, self._closed
        if closed:
            raise RuntimeError("the collector is closed")
        if current is not None:
            return current
        made = make_client(self._target)  # reads CA files: outside the lock
        with self._lock:
            if self._client is None and not self._closed:
                self._client = made
                return made
            current = self._client
        made.http.close()  # another thread made one first, or it was closed meanwhile
        if current is None:
            raise RuntimeError("the collector is closed")
        return current

    def drop(self, *, close: bool = False) -> None:
        """Forget the current client and cut off its requests: the next fetch dials afresh
        (or, with `close`, none makes a client again)."""
        with self._lock:
            old, self._client = self._client, None
            self._closed = self._closed or close
        if old is not None:
            old.discard()
