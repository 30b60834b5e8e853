"""Value checks shared by config schemas (field metadata `check`).

Each returns the value or raises ValueError whose message completes "key.path: ...". Messages
never repeat a value that could hold a secret.
"""

from __future__ import annotations

import re
from pathlib import Path


def check_positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return value


def check_non_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def check_limit(value: int) -> int:
    """A count or budget: at least 1."""
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def check_existing_file(value: str) -> str:
    if not Path(value).is_file():
        raise ValueError(f"file {value} does not exist")
    return value


def check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value
