"""collectors/secret.py: what may reach a log line or a page."""

from __future__ import annotations

from collectors.base import SourceDown, classify_error
from collectors.secret import Secret, redact, redact_url, url_password


def test_redact_scrubs_url_passwords_parameters_and_known_secrets():
    text = (
        "connect postgresql://app:pa55word@db:5432/x failed; "
        "dsn 'host=db password=pa55word'; token abcdef123 leaked"
    )
    cleaned = redact(text, ["abcdef123"])
    assert "pa55word" not in cleaned and "abcdef123" not in cleaned
    assert "postgresql://app:***@db:5432/x" in cleaned
    assert "password=***" in cleaned


def test_redact_url_and_url_password():
    assert redact_url("redis://user:pw@127.0.0.1:6379/0") == "redis://user:***@127.0.0.1:6379/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert url_password("redis://:s3@h/0") == "s3"
    assert url_password("redis://h/0") is None


def test_secret_never_shows_itself():
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert f"{secret}" != "hunter2" and secret.reveal() == "hunter2"
    assert "hunter2" not in repr({"password": secret})


def test_classify_error_follows_the_cause_chain():
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert classify_error(outer) == "refused"
    assert classify_error(TimeoutError()) == "timeout"
    assert classify_error(SourceDown("bad_response")) == "bad_response"
    assert classify_error(ValueError("x")) == "error"
