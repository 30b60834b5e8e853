"""Value checks shared by config schemas (field metadata `check`).

Each returns the value or raises ValueError whose message completes "key.path: ...". Messages
never repeat a value that could hold a secret.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

from collectors.secret import Secret

#: Longest path the kernel takes (PATH_MAX), and longest single name in it (NAME_MAX).
PATH_MAX = 4096
NAME_MAX = 255
#: A file name from the config is echoed at most this long (and a header name at most 64).
_SHOWN_PATH = 256
#: RFC 9110 token: what an HTTP header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def check_finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    return value


def check_positive(value: float) -> float:
    if check_finite(value) <= 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return value


def check_non_negative(value: float) -> float:
    if check_finite(value) < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def check_limit(value: int) -> int:
    """A count or budget: at least 1."""
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def shown_path(value: str) -> str:
    """A path as it may appear in a message: cut to its first 256 characters."""
    return value if len(value) <= _SHOWN_PATH else value[:_SHOWN_PATH] + "..."


def check_path(value: str) -> str:
    """A file name the kernel can take: no NUL, not longer than PATH_MAX / NAME_MAX."""
    if "\0" in value:
        raise ValueError("a file name must not contain NUL characters")
    if len(value.encode(errors="surrogateescape")) > PATH_MAX:
        raise ValueError(f"file name {shown_path(value)} is longer than {PATH_MAX} bytes")
    if any(len(part.encode(errors="surrogateescape")) > NAME_MAX for part in value.split("/")):
        raise ValueError(f"file name {shown_path(value)} has a part over {NAME_MAX} bytes")
    return value


def check_existing_file(value: str) -> str:
    """A regular file (not a FIFO or a device: reading those would hang or never end)."""
    check_path(value)
    try:
        regular = Path(value).is_file()
        exists = regular or Path(value).exists()
    except OSError as exc:
        raise ValueError(f"cannot use {shown_path(value)}: {exc.strerror or exc}") from None
    if not exists:
        raise ValueError(f"file {shown_path(value)} does not exist")
    if not regular:
        raise ValueError(f"{shown_path(value)} is not a regular file")
    return value


def check_header_names(value: Mapping[str, str]) -> Mapping[str, str]:
    """HTTP header names: tokens (no spaces, colons, CR or LF)."""
    for name in value:
        if not _HEADER_NAME.match(name):
            raise ValueError(
                f"{name[:64]!r} is not an HTTP header name "
                "(letters, digits and !#$%&'*+-.^_`|~ only)"
            )
    return value


def check_header_value(value: str | Secret) -> str | Secret:
    """Text that can be sent as an HTTP header value: printable ASCII and tabs, no CR or LF.
    The message never repeats the value (it is often a token)."""
    text = value.reveal() if isinstance(value, Secret) else value
    for index, char in enumerate(text):
        if not (char == "\t" or " " <= char <= "~"):
            what = "CR or LF" if char in "\r\n" else "a control or non-ASCII character"
            raise ValueError(
                f"not usable in an HTTP header: character {index + 1} is {what} "
                "(printable ASCII only)"
            )
    return value


def check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value
