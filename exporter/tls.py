"""TLS for the exporter's own listener: load the certificate and key the way serving will, so
that a file that is not a certificate is a config error and not a crash at start."""

from __future__ import annotations

import ssl

from exporter.schema import KeyProblem


def check_server_pair(cert_file: str, key_file: str, *, cert_key: str, key_key: str) -> None:
    """Raise KeyProblem naming `cert_key` or `key_key` when the pair cannot serve TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=cert_file)
    except (ssl.SSLError, ValueError) as exc:
        raise KeyProblem(cert_key, f"no PEM certificate in {cert_file} ({_reason(exc)})") from None
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, ValueError) as exc:
        raise KeyProblem(
            key_key, f"{key_file} is not a PEM private key for {cert_key} ({_reason(exc)})"
        ) from None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason).lower().replace("_", " ") if reason else type(exc).__name__
