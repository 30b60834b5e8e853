"""HTTP basic auth against bcrypt hashes, as the Prometheus exporter-toolkit's web config does.

bcrypt is deliberately slow (~50-300 ms a check), which makes it a denial-of-service lever if
it is run carelessly. So:

- a credential verified once is remembered by its SHA-256 digest: a scrape every 15 s with the
  right password never pays bcrypt again, and never waits behind anyone else's check;
- bcrypt runs in a small thread pool, never on the event loop, and at most
  `_PENDING_LIMIT` checks may wait for it: beyond that a request is answered 429 at once;
- each client address has a token bucket of checks (`burst`, refilled at `per_minute`): a
  burst of bad passwords from one address is answered 429 without running bcrypt;
- an unknown user name costs one bcrypt round against a dummy hash of the configured cost, so
  the answer's timing does not tell which user names exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

#: Verified credentials remembered (one per user); the table is cleared when full.
_CACHE_LIMIT = 256
#: Threads that run bcrypt: a check uses one core fully.
_WORKERS = 2
#: bcrypt checks running or waiting at once (all clients together); more are answered 429.
_PENDING_LIMIT = 8
#: Client addresses whose budgets are remembered; the least recently seen are forgotten.
_ADDRESS_LIMIT = 4096


@dataclass(frozen=True)
class AuthLimits:
    """How many bcrypt checks one client address may cause: a bucket of `burst` checks,
    refilled at `per_minute`."""

    burst: int = 5
    per_minute: float = 30.0


def bcrypt_cost(hashed: str) -> int:
    """The cost factor of a `$2b$12$...` hash (ValueError when it is not one)."""
    parts = hashed.split("$")
    if len(parts) != 4 or not parts[2].isdigit():
        raise ValueError("not a bcrypt hash")
    return int(parts[2])


def dummy_hash(cost: int) -> bytes:
    """A well-formed hash of `cost` that no password matches: checking against it costs as
    much as checking against a real one, and making it costs nothing."""
    import bcrypt  # here: an exporter without users never loads it

    return bcrypt.gensalt(rounds=cost) + b"." * 31


class AddressBudgets:
    """A token bucket of bcrypt checks per client address (bounded in memory)."""

    def __init__(self, limits: AuthLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, address: str) -> bool:
        """Spend one check for `address`; False when its budget is used up."""
        now = self._clock()
        tokens, since = self._buckets.pop(address, (float(self.limits.burst), now))
        tokens = min(self.limits.burst, tokens + (now - since) * self.limits.per_minute / 60)
        allowed = tokens >= 1
        self._buckets[address] = (tokens - 1 if allowed else tokens, now)
        while len(self._buckets) > _ADDRESS_LIMIT:
            self._buckets.popitem(last=False)
        return allowed


@dataclass(frozen=True)
class _Users:
    source: Mapping[str, str]
    hashes: dict[str, bytes]
    dummy: bytes


class BasicAuthMiddleware:
    """Pure ASGI: when `users()` (name -> bcrypt hash) is not empty, every HTTP request needs
    one of them. `users` is asked on every request, so a reloaded config takes effect."""

    def __init__(
        self,
        app: ASGIApp,
        users: Callable[[], Mapping[str, str]],
        limits: Callable[[], AuthLimits] = AuthLimits,
        realm: str = "afirgen-exporter",
    ):
        self.app = app
        self.users = users
        self.limits = limits
        self.realm = realm
        self.checks_run = 0  # bcrypt rounds started, for tests and the benchmark
        self._verified: dict[str, bytes] = {}
        self._current: _Users | None = None
        self._budgets = AddressBudgets(AuthLimits())
        self._pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="bcrypt")
        self._pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        users = self._users()
        if users is None:
            await self.app(scope, receive, send)
            return
        status = await self._check(scope, users)
        if status == 200:
            await self.app(scope, receive, send)
        else:
            await self._refuse(send, status)

    def _users(self) -> _Users | None:
        source = self.users()
        if not source:
            return None
        current = self._current
        if current is None or current.source is not source:
            hashes = {name: hashed.encode() for name, hashed in source.items()}
            cost = max(bcrypt_cost(hashed) for hashed in source.values())
            current = self._current = _Users(source, hashes, dummy_hash(cost))
        limits = self.limits()
        if self._budgets.limits != limits:
            self._budgets = AddressBudgets(limits)
        return current

    async def _check(self, scope: Scope, users: _Users) -> int:
        """200, 401, or 429 (over budget: bcrypt was not run)."""
        credentials = _credentials(scope)
        if credentials is None:
            return 401
        user, password = credentials
        hashed = users.hashes.get(user)
        digest = hashlib.sha256((hashed or b"") + b"\0" + password).digest()
        remembered = self._verified.get(user)
        if hashed is not None and remembered is not None:
            if hmac.compare_digest(remembered, digest):
                return 200
        client = scope.get("client")
        address = str(client[0]) if client else ""
        if self._pending >= _PENDING_LIMIT or not self._budgets.take(address):
            return 429
        self._pending += 1
        self.checks_run += 1
        try:
            loop = asyncio.get_running_loop()
            against = users.dummy if hashed is None else hashed
            matched = await loop.run_in_executor(self._pool, _matches, password, against)
        finally:
            self._pending -= 1
        if not matched or hashed is None:
            return 401
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[user] = digest
        return 200

    async def _refuse(self, send: Send, status: int) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if status == 401:
            headers.append((b"www-authenticate", f'Basic realm="{self.realm}"'.encode()))
            body = b"Unauthorized\n"
        else:
            headers.append((b"retry-after", b"60"))
            body = b"Too many authentication attempts; retry later\n"
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _matches(password: bytes, hashed: bytes) -> bool:
    import bcrypt  # cached after the first check: this costs a dict lookup

    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # bcrypt 5 refuses passwords over 72 bytes rather than cut them
        return False


def _credentials(scope: Scope) -> tuple[str, bytes] | None:
    """(user, password) from an `Authorization: Basic` header, or None."""
    header = dict(scope.get("headers") or ()).get(b"authorization", b"")
    scheme, _, encoded = header.partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        name = user.decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not sep:
        return None
    return name, password
