"""HTTP basic auth against bcrypt hashes, as the Prometheus exporter-toolkit's web config does.

bcrypt is deliberately slow (~100-300 ms a check), so a credential that was verified once is
remembered by its SHA-256 digest: a scrape every 15 s must not cost a bcrypt round each time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

import bcrypt
from starlette.types import ASGIApp, Receive, Scope, Send

_CACHE_LIMIT = 256


class BasicAuthMiddleware:
    """Pure ASGI: every HTTP request needs a user from `users` (name -> bcrypt hash)."""

    def __init__(self, app: ASGIApp, users: Mapping[str, str], realm: str = "afirgen-exporter"):
        self.app = app
        self.users = {name: hashed.encode() for name, hashed in users.items()}
        self.realm = realm
        self._verified: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.authorized(scope):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", f'Basic realm="{self.realm}"'.encode()),
                    (b"content-type", b"text/plain; charset=utf-8"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"Unauthorized\n"})

    def authorized(self, scope: Scope) -> bool:
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if not sep or hashed is None:
            return False
        digest = hashlib.sha256(hashed + b"\0" + password.encode()).digest()
        remembered = self._verified.get(user)
        if remembered is not None and hmac.compare_digest(remembered, digest):
            return True
        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[user] = digest
        return True
