"""Standalone serving: uvicorn on the configured address, TLS when configured, reload on SIGHUP.

uvicorn logs through the exporter's own format (no handlers of its own), and at the default
INFO level its lifecycle chatter is left out: an operator sees one line once the socket is
bound (`listening on ...`, never before: a failed bind is an error instead) and one at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import Config as UvicornConfig
from uvicorn.server import Server as UvicornServer

from exporter.app import create_app
from exporter.connections import guarded_protocol
from exporter.schema import ConfigError
from exporter.state import Exporter
from exporter.webconfig import LiveTLS, WebConfigWatcher

log = logging.getLogger("afirgen_exporter")


class _Lifespan:
    """Adds SIGHUP reload and a clean close of every source to the app's lifespan."""

    def __init__(
        self, app: ASGIApp, exporter: Exporter, web_config: WebConfigWatcher | None = None
    ) -> None:
        self.app = app
        self.exporter = exporter
        self.web_config = web_config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        async with self._running():
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.exporter.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                log.info("stopped")

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        def on_sighup() -> None:
            loop.create_task(self._reload())

        try:
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals
            pass
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)

    async def _reload(self) -> None:
        if self.web_config is not None:
            self.web_config.reload()
        try:
            await self.exporter.reload()
        except ConfigError as exc:
            log.error("config reload refused, keeping the old config: %s", exc.one_line())


#: File descriptors kept for everything but client connections (sources, logs, the listener).
FD_RESERVE = 128


def connection_limit(configured: int) -> int:
    """`web.max_connections`, lowered to what the FD limit allows once the soft limit is raised
    to the hard one (as Go programs do at start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - FD_RESERVE))


class _Server(UvicornServer):
    """uvicorn's Server, announcing the address in the exporter's words once it is bound, and
    answering the scrapes in flight as soon as shutdown begins: uvicorn would otherwise cancel
    a long one after its graceful timeout, with an ERROR traceback."""

    def __init__(self, config: UvicornConfig, exporter: Exporter) -> None:
        super().__init__(config)
        self.exporter = exporter

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.exporter.stop_scrapes()
        await super().shutdown(sockets)

    def _log_started_message(self, listeners: Any) -> None:
        scheme = "https" if self.config.is_ssl else "http"
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        log.info("listening on %s://%s:%d", scheme, shown, self.config.port)


def uvicorn_log_level(log_level: str) -> str:
    """uvicorn's own INFO lines are lifecycle chatter: shown with `--log.level debug` only."""
    return log_level if log_level in ("debug", "warning", "error") else "warning"


def uvicorn_config(
    exporter: Exporter,
    app: ASGIApp,
    *,
    log_level: str = "info",
    web_config: WebConfigWatcher | None = None,
) -> UvicornConfig:
    """Everything uvicorn needs, from the `web:` settings and the web config file."""
    web = exporter.config.web
    limit = connection_limit(web.max_connections)
    if limit < web.max_connections:
        log.warning("web.max_connections lowered to %d by the open-files limit", limit)
    tls: dict[str, Any] = {"ssl_certfile": web.tls_cert_file, "ssl_keyfile": web.tls_key_file}
    if web_config is not None and web_config.config.tls_server_config is not None:
        live = LiveTLS(web_config)
        tls = {"ssl_context_factory": lambda config, default: live.context}
    return UvicornConfig(
        app,
        host=web.host,
        port=web.port,
        **tls,
        http=guarded_protocol(web.header_timeout_seconds, limit),
        timeout_keep_alive=web.keep_alive_timeout_seconds,  # type: ignore[arg-type]
        log_config=None,  # propagate to the exporter's logging set-up (one format)
        log_level=uvicorn_log_level(log_level),
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For must not choose the client's auth budget
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=5,
        # no WebSocket routes: uvicorn would import websockets or wsproto where installed
        ws="none",
    )


def serve(
    exporter: Exporter,
    *,
    log_level: str = "info",
    lifecycle: bool = False,
    web_config: WebConfigWatcher | None = None,
) -> None:
    """Run until SIGINT/SIGTERM."""
    served = create_app(exporter, lifecycle=lifecycle, web_config=web_config)
    app = _Lifespan(served, exporter, web_config)
    config = uvicorn_config(exporter, app, log_level=log_level, web_config=web_config)
    _Server(config, exporter).run()
