"""The logging policy: quiet at INFO, every line redacted, on stderr.

- At INFO the exporter logs start-up, reloads and one line per change of state of a target
  (down with its bounded reason, back up: collectors.base.SourceCollector.report), never a
  line per probe or per failed scrape.
- HTTP client libraries log every request at INFO (`HTTP Request: GET <url> ...`), with the
  URL's query and so any `?api_key=...`: they are held at WARNING unless debug is asked for.
- Whatever formats a line (a message, its arguments, a traceback) goes through `redact_line`:
  URL passwords, `password=`-style parameters, every URL query value and bearer tokens are
  masked. A message is one line: line breaks in it (a driver's multi-line error text) become
  spaces; only a traceback, when there is one, spans lines after it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from collectors.secret import MASK, redact

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Loggers that log each request they make at INFO; WARNING unless the level is debug.
CHATTY = ("httpx", "httpcore", "urllib3", "hpack")

_QUERY_VALUE = re.compile(r"(?P<key>[?&;][^=&;#\s\"'<>]+=)(?P<value>[^&;#\s\"'<>]+)")
_BREAK = re.compile(r"\s*[\r\n]+\s*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}")


def redact_line(text: str) -> str:
    """`text` with URL passwords, secret-like parameters, query values and tokens masked."""
    text = redact(text)
    text = _QUERY_VALUE.sub(lambda m: f"{m['key']}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m[1]} {MASK}", text)


def one_line(text: str) -> str:
    """`text` with every line break (and the indentation around it) turned into one space."""
    return _BREAK.sub(" ", text).strip() if "\n" in text or "\r" in text else text


class RedactingFormatter(logging.Formatter):
    """A formatter whose every output (message, arguments, traceback) is redacted, and whose
    message is one line (a log shipper splits lines into records); a traceback follows it."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = one_line(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact_line(super().format(record))


def configure(level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """Install the policy on the root logger (replacing earlier handlers); returns the handler."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    chatty = numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    for name in CHATTY:
        logging.getLogger(name).setLevel(chatty)
    return handler
