"""One entry of `model_servers:`: the keys an operator writes, and their checks."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from collectors.checks import (
    check_existing_file,
    check_header_names,
    check_header_value,
    check_limit,
    check_positive,
)
from collectors.model_servers.presets import PRESETS
from collectors.model_servers.urls import shown_url
from collectors.secret import Secret


def check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL with a host")
    if parts.password is not None:
        raise ValueError("must not hold a password (use bearer_token_file or headers)")
    check_port(parts.netloc)
    return value.rstrip("/") if parts.path in ("", "/") and not parts.query else value


def check_port(netloc: str) -> None:
    """A port, when given, is 1-65535 (urlsplit only complains once `.port` is read: at the
    first request)."""
    host_port = netloc.rpartition("@")[2]
    _, colon, port = host_port.rpartition(":")
    if not colon or "]" in port or port == "":  # no port (or the inside of an IPv6 literal)
        return
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"the port {port!r} is not a number from 1 to 65535")


def check_status_codes(value: tuple[int, ...]) -> tuple[int, ...]:
    if not value:
        raise ValueError("must list at least one status code")
    for code in value:
        if not 100 <= code <= 599:
            raise ValueError(f"{code} is not an HTTP status code")
    return value


def no_key_password() -> bytes:
    """An encrypted key would make OpenSSL ask for its password on the terminal: refuse it."""
    return b""


def check_ca_file(value: str) -> str:
    """A readable file of PEM certificates (read now: a scrape must not be the first to find
    out, and building collectors reads no file)."""
    check_existing_file(value)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=value)
    except (ssl.SSLError, ValueError, OSError):
        raise ValueError(f"{value} holds no PEM certificate") from None
    return value


def check_client_certificate(cert_file: str, key_file: str | None) -> None:
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_cert_chain(cert_file, key_file, password=no_key_password)
    except (ssl.SSLError, ValueError, OSError):
        raise ValueError(
            "cert_file and key_file must be a PEM certificate and its unencrypted key"
        ) from None


def check_preset_name(value: str) -> str:
    if value not in PRESETS:
        raise ValueError(f"must be one of {', '.join(PRESETS)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Target:
    """One entry of `model_servers:`."""

    name: str
    url: str = field(metadata={"check": check_url})
    #: Which preset's endpoints to ask: a key of `PRESETS`.
    kind: str = field(default="generic", metadata={"check": check_preset_name})
    #: Models whose readiness is reported; empty: what the server lists (vLLM, TGI, Ollama).
    models: tuple[str, ...] = ()
    timeout_seconds: float | None = field(default=None, metadata={"check": check_positive})
    bearer_token: Secret | None = field(default=None, metadata={"check": check_header_value})
    bearer_token_file: str | None = field(
        default=None, metadata={"secret_file_for": "bearer_token"}
    )
    #: Extra request headers (an API key header, a Host for a gateway); values may use ${ENV}.
    headers: Mapping[str, str] = field(
        default_factory=dict,
        metadata={"check": check_header_names, "check_each": check_header_value},
    )
    tls_verify: bool = True
    ca_file: str | None = field(default=None, metadata={"check": check_ca_file})
    cert_file: str | None = field(default=None, metadata={"check": check_existing_file})
    key_file: str | None = field(default=None, metadata={"check": check_existing_file})
    #: generic: the status codes that mean ready.
    expected_status: tuple[int, ...] = field(default=(200,), metadata={"check": check_status_codes})
    #: generic: a dotted path into the JSON answer (`status`, `checks.0.state`) that must exist...
    json_field: str | None = None
    #: ...and, when set, equal this text (compared with the JSON value written as text).
    json_equals: str | None = None
    #: TorchServe: its management API (`http://host:8081`), for per-model worker readiness.
    management_url: str | None = field(default=None, metadata={"check": check_url})
    #: At most this many models the server lists are reported when `models` is empty, and at
    #: most this many models' inference numbers (the rest summed under `other`).
    max_models: int = field(default=20, metadata={"check": check_limit})
    #: The engine's own metrics page, where it is not the preset's default (same TLS and auth).
    metrics_url: str | None = field(default=None, metadata={"check": check_url})

    def __post_init__(self) -> None:
        if self.json_equals is not None and self.json_field is None:
            raise ValueError("json_equals needs json_field")
        generic_only = (self.json_field, self.expected_status != (200,))
        if self.kind != "generic" and any(generic_only):
            raise ValueError("expected_status and json_field are for kind generic only")
        if self.management_url is not None and self.kind != "torchserve":
            raise ValueError("management_url is for kind torchserve only")
        if self.metrics_url is not None and PRESETS[self.kind].metrics_path is None:
            with_metrics = ", ".join(k for k, p in PRESETS.items() if p.metrics_path)
            raise ValueError(f"metrics_url is for the kinds with engine metrics ({with_metrics})")
        preset = PRESETS[self.kind]
        https = urlsplit(self.url).scheme == "https"
        if self.metrics_url is None and preset.metrics_plain_http and https:
            raise ValueError(
                f"metrics_url must be set for kind {self.kind} with an https url: "
                f"{preset.title} serves its metrics over plain HTTP on its own port "
                f"({preset.metrics_port}), whatever is in front of its API (for example "
                f"metrics_url: http://HOST:{preset.metrics_port}/metrics)"
            )
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        if self.cert_file is not None:
            check_client_certificate(self.cert_file, self.key_file)

    def secrets(self) -> list[str]:
        """Values that must never be shown: header values and the bearer token."""
        values = list(self.headers.values())
        if self.bearer_token:
            values.append(self.bearer_token.reveal())
        return values

    def __repr__(self) -> str:  # the URL's query and every header value may be a credential
        return (
            f"Target(name={self.name!r}, kind={self.kind!r}, url={shown_url(self.url)!r}, "
            f"models={self.models!r}, headers={sorted(self.headers)!r})"
        )
