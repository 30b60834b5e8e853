"""Model-server URLs as they may be shown: query values and userinfo masked.

A gateway in front of a model server may take its API key in the query (`?api_key=...`), so
every URL the collector shows (log lines, errors, landing-page notes, reprs) goes through
`shown_url`; the real URL is used for the request only (httpcore, which sends it, logs hosts
and ports only, at DEBUG).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from collectors.secret import MASK

#: A URL inside free text (a log message): scheme, then anything up to white space or a quote.
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


def shown_url(url: str) -> str:
    """`url` with every query value and the userinfo replaced by `***` (keys are kept)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        netloc = f"{MASK}@{host}" + (f":{port}" if port is not None else "")
    query = "&".join(
        f"{key}={MASK}" if sep else key
        for key, sep, _ in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=""))


def request_url(base: str, path: str) -> str:
    """`path` under the base URL, the base's query kept (a gateway's key goes with every
    request); "" is the base URL itself."""
    if not path:
        return base
    if "?" not in base:
        return base.rstrip("/") + path
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path))


def mask_urls(text: str) -> str:
    """Every URL in `text` passed through `shown_url`."""
    return _URL_IN_TEXT.sub(lambda match: shown_url(match.group(0)), text)
