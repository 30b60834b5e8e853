"""The target's httpx client: auth headers, TLS settings, keep-alive across scrapes."""

from __future__ import annotations

import ssl

import httpx

from collectors.model_servers.target import Target

#: Idle keep-alive connections are kept this long, longer than any usual scrape interval.
KEEPALIVE_EXPIRY_SECONDS = 300.0


def ssl_context(target: Target) -> ssl.SSLContext:
    """Verification as configured: the system CAs or `ca_file`, optionally a client cert."""
    context = ssl.create_default_context(cafile=target.ca_file)
    if not target.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if target.cert_file:
        context.load_cert_chain(target.cert_file, target.key_file)
    return context


def make_client(target: Target) -> httpx.Client:
    """The target's one client: auth headers, TLS settings, keep-alive across scrapes."""
    headers = {"User-Agent": "afirgen-exporter", "Accept": "application/json"}
    headers.update(target.headers)
    if target.bearer_token:
        headers["Authorization"] = f"Bearer {target.bearer_token.reveal()}"
    return httpx.Client(
        headers=headers,
        verify=ssl_context(target),
        follow_redirects=False,
        trust_env=False,  # never send a probe through a proxy from the environment
        limits=httpx.Limits(
            max_connections=4,
            max_keepalive_connections=2,
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        ),
    )
