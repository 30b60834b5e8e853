"""Secrets that mask themselves, and redaction of free text before it is logged.

A password read from a config file or the environment is wrapped in `Secret` so that no repr,
log line or landing page can show it by accident; `redact` scrubs known secrets and the userinfo
part of URLs from text (exception messages) that is about to be logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_URL_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]+)@"
)
_PARAM_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|token|secret)=([^\s&;'\"]+)")


class Secret:
    """A string that never shows itself in repr/str; call `reveal()` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Scrub URL passwords, `password=` style parameters and every known secret from `text`."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _PARAM_PASSWORD.sub(lambda m: f"{m[1]}={MASK}", text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`: safe for logs and the landing page."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def url_password(url: str) -> str | None:
    """The password embedded in a URL, so callers can add it to their list of secrets."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None
