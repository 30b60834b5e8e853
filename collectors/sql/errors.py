"""Driver errors -> the bounded failure reasons (the message text itself is never shown)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from collectors.base import classify_error

#: words in driver error messages -> bounded reason
_DBAPI_REASONS: tuple[tuple[str, str], ...] = (
    ("statement timeout", "timeout"),
    ("lock timeout", "timeout"),
    ("max_statement_time", "timeout"),
    ("timed out", "timeout"),
    ("timeout", "timeout"),
    ("connection refused", "refused"),
    ("can't connect", "refused"),
    ("password authentication failed", "auth"),
    ("access denied", "auth"),
    ("no pg_hba.conf entry", "auth"),
    ("does not exist", "error"),
    ("unable to open database file", "connection"),
    ("could not translate host name", "unreachable"),
    ("no route to host", "unreachable"),
    ("server closed the connection", "connection"),
    ("lost connection", "connection"),
)


def classify(exc: BaseException) -> str:
    """The reason for a failure of a SQLAlchemy call (timeouts, refusals, auth...)."""
    if isinstance(exc, DBAPIError):
        message = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
        for words, reason in _DBAPI_REASONS:
            if words in message:
                return reason
    elif isinstance(exc, SQLAlchemyError) and "timeout" in str(exc).lower():
        return "timeout"
    return classify_error(exc)
