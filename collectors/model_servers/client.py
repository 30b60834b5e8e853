"""The target's HTTP client: auth headers, TLS settings, keep-alive, a whole-request deadline.

Requests go straight to an httpcore connection pool (httpx's own engine, over our
`DeadlineNetwork`): a probe sends a few fixed GETs, and httpx's layer above the pool (URL and header
models, cookies, redirects, events) was about half of each request's CPU. What it did that
matters is kept here: each URL is parsed by httpx's rules once (IDNA, percent-encoding, the Host
header with IPv6 brackets and a non-default port) and reused; the configured headers and auth
go with every request; no redirect is followed, no proxy from the environment used, no cookie
kept. Bodies are asked without compression (`Accept-Encoding` is not sent: no CPU spent on
either side for a page on the local network); a server that compresses anyway is decoded.

`Connection` makes the client on the first fetch, not when the collector is built (loading a
config of thousands of servers builds no client and no TLS context), and replaces it when a run
is abandoned: the stuck run's sockets are shut down and the next run dials afresh. Its lock
only guards swapping the client, never I/O, so `close()` cannot wait on a stuck fetch.
"""

from __future__ import annotations

import ssl
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

from collectors.model_servers.deadline import DeadlineNetwork
from collectors.model_servers.target import Target, no_key_password

#: Idle connections are dropped after this long: before the idle timeouts servers commonly
#: close them at (gunicorn 2 s, uvicorn and so vLLM 5 s), so a request is not sent on a socket
#: the server is closing. A scrape's own requests share its connection; scrapes further apart
#: dial afresh. (A server that closes even sooner is covered by one retry, see `probe`.)
KEEPALIVE_EXPIRY_SECONDS = 1.5
MAX_CONNECTIONS = 4
MAX_KEEPALIVE_CONNECTIONS = 2
#: Prepared requests kept per client (a target asks a handful of fixed URLs).
MAX_PREPARED = 64


def uses_tls(target: Target) -> bool:
    """Whether any URL the client may ask is https: the derived ones (a preset's metrics
    port) are plain http, so only the configured URLs can be."""
    urls = (target.url, target.management_url, target.metrics_url)
    return any(urlsplit(url).scheme == "https" for url in urls if url)


def ssl_context(target: Target) -> ssl.SSLContext:
    """Verification as configured: the system CAs or `ca_file`, optionally a client cert."""
    context = ssl.create_default_context(cafile=target.ca_file)
    if not target.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if target.cert_file:
        context.load_cert_chain(target.cert_file, target.key_file, password=no_key_password)
    return context


@dataclass(frozen=True)
class Prepared:
    """One URL's request, ready to send: httpcore's URL and every header, Host first."""

    url: httpcore.URL
    headers: list[tuple[bytes, bytes]]


class Client:
    """One connection pool, the network its sockets go through, and the target's headers."""

    def __init__(
        self, pool: httpcore.ConnectionPool, network: DeadlineNetwork, headers: Mapping[str, str]
    ) -> None:
        self.pool = pool
        self.network = network
        self.headers = dict(headers)
        self._prepared: dict[tuple[str, tuple[tuple[str, str], ...]], Prepared] = {}

    def prepare(self, url: str, extra: Mapping[str, str] | None = None) -> Prepared:
        """The request for `url`, `extra` headers replacing the client's of the same name."""
        key = (url, tuple(extra.items()) if extra else ())
        found = self._prepared.get(key)
        if found is not None:
            return found
        parsed = httpx.URL(url)
        merged = {name.lower(): (name, value) for name, value in self.headers.items()}
        merged.update({name.lower(): (name, value) for name, value in (extra or {}).items()})
        headers = [] if "host" in merged else [(b"Host", parsed.netloc)]
        headers += [(n.encode("ascii"), v.encode("ascii")) for n, v in merged.values()]
        target = httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        )
        found = Prepared(target, headers)
        if len(self._prepared) < MAX_PREPARED:
            self._prepared[key] = found
        return found

    def discard(self) -> None:
        """Cut off whatever request is in flight on it and close it (at once, or as that
        request ends, in its thread); never blocks."""
        self.network.cut_off(self.pool.close)


def decoder(headers: list[tuple[bytes, bytes]]) -> zlib._Decompress | None:
    """A decompressor for a body the server compressed anyway (gzip, deflate); None if not."""
    for name, value in headers:
        if name.lower() == b"content-encoding":
            coding = value.strip().lower()
            if coding in (b"gzip", b"x-gzip"):
                return zlib.decompressobj(16 + zlib.MAX_WBITS)
            if coding == b"deflate":
                return zlib.decompressobj()
    return None


def make_client(target: Target) -> Client:
    """The target's client: auth headers, TLS settings, keep-alive, the deadline network."""
    headers = {"User-Agent": "afirgen-exporter", "Accept": "application/json"}
    headers.update(target.headers)
    if target.bearer_token:
        headers["Authorization"] = f"Bearer {target.bearer_token.reveal()}"
    network = DeadlineNetwork()
    pool = httpcore.ConnectionPool(
        # loading the CAs costs 1.4 MiB a process: not for a server only spoken to in http
        ssl_context=ssl_context(target) if uses_tls(target) else None,
        max_connections=MAX_CONNECTIONS,
        max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        network_backend=network,
    )
    return Client(pool, network, headers)


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
        made.pool.close()  # another thread made one first, or it was closed meanwhile
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
