"""`--web.config.file`: the Prometheus exporter-toolkit web config, as Go exporters take it.

The same YAML an operator already has for node_exporter and friends::

    tls_server_config: {cert_file, key_file, client_ca_file, client_auth_type,
                        min_version, max_version, cipher_suites, prefer_server_cipher_suites}
    http_server_config: {headers, http2}
    basic_auth_users: {user: bcrypt hash}

Relative file names are read from the web config file's folder, as the toolkit does. Unknown
keys are errors; the toolkit keys this exporter cannot honour (`client_allowed_sans`,
`curve_preferences`, inline `cert`/`key`, client auth types that accept unverified
certificates) are refused by name instead of being silently ignored.

The toolkit re-reads the file on every connection. `WebConfigWatcher.current()` does the same
cheaply: at most once a second it compares the file's mtime, size and inode, and re-reads it
when they changed (and on SIGHUP). A file that no longer loads is logged and the previous one
keeps serving. TLS itself (on or off) is decided at start.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from collectors.checks import check_existing_file, check_header_value
from exporter.config import WebConfig, check_bcrypt_hash, check_user_names, nesting_depth
from exporter.files import CONFIG_FILE_LIMIT, decode_text, read_regular_file
from exporter.schema import ConfigError, KeyProblem, Loader
from exporter.tls import (
    CLIENT_AUTH,
    GO_CIPHER_SUITES,
    TLS_VERSIONS,
    check_server_pair,
    openssl_ciphers,
)

log = logging.getLogger("afirgen_exporter")

ClientAuthType = Literal[
    "",
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

#: Response headers the toolkit lets `http_server_config.headers` set, with the values it
#: accepts (None: any).
SECURITY_HEADERS: dict[str, tuple[str, ...] | None] = {
    "strict-transport-security": None,
    "x-content-type-options": ("nosniff",),
    "x-frame-options": ("deny", "sameorigin"),
    "x-xss-protection": None,
    "content-security-policy": None,
}
_PATH_KEYS = ("cert_file", "key_file", "client_ca_file")
#: How often the file's mtime is looked at, at most.
CHECK_INTERVAL_SECONDS = 1.0


def _unsupported(value: Any) -> Any:
    raise ValueError("is a toolkit setting afirgen-exporter cannot honour; remove it")


def check_cipher_suites(value: tuple[str, ...]) -> tuple[str, ...]:
    for index, name in enumerate(value):
        if name not in GO_CIPHER_SUITES:
            raise ValueError(f"[{index}] {name[:64]!r} is not a Go cipher suite name")
    return value


def check_security_headers(value: Mapping[str, str]) -> Mapping[str, str]:
    for name, header_value in value.items():
        allowed = SECURITY_HEADERS.get(name.lower(), ())
        if allowed == ():
            names = ", ".join(n.title() for n in SECURITY_HEADERS)
            raise ValueError(f"{name[:64]!r} cannot be set (the toolkit allows {names})")
        if allowed is not None and header_value.lower() not in allowed:
            raise ValueError(f"{name}: must be one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class TlsServerConfig:
    cert_file: str = field(metadata={"check": check_existing_file})
    key_file: str = field(metadata={"check": check_existing_file})
    client_ca_file: str | None = field(default=None, metadata={"check": check_existing_file})
    client_auth_type: ClientAuthType = "NoClientCert"
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion = "TLS13"
    cipher_suites: tuple[str, ...] = field(default=(), metadata={"check": check_cipher_suites})
    prefer_server_cipher_suites: bool = True
    client_allowed_sans: Any = field(default=None, metadata={"check": _unsupported})
    curve_preferences: Any = field(default=None, metadata={"check": _unsupported})
    cert: Any = field(default=None, metadata={"check": _unsupported})
    key: Any = field(default=None, metadata={"check": _unsupported})

    def __post_init__(self) -> None:
        mode = CLIENT_AUTH[self.client_auth_type]
        if mode is None:
            raise KeyProblem(
                "client_auth_type",
                f"{self.client_auth_type} accepts client certificates without verifying them, "
                "which Python's ssl cannot do: use VerifyClientCertIfGiven or "
                "RequireAndVerifyClientCert with client_ca_file",
            )
        if mode != ssl.CERT_NONE and not self.client_ca_file:
            raise KeyProblem("client_ca_file", f"required by {self.client_auth_type}")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise KeyProblem("min_version", f"{self.min_version} is above max_version")
        check_server_pair(self.cert_file, self.key_file, cert_key="cert_file", key_key="key_file")
        try:
            server_context(self)
        except ssl.SSLError as exc:
            key = "cipher_suites" if "cipher" in str(exc).lower() else "client_ca_file"
            raise KeyProblem(key, f"OpenSSL refused it ({exc.reason or exc})") from None


@dataclass(frozen=True)
class HttpServerConfig:
    #: Accepted as in the toolkit; uvicorn serves HTTP/1.1 only.
    http2: bool = True
    headers: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"check": check_security_headers, "check_each": check_header_value},
    )


@dataclass(frozen=True)
class WebConfigFile:
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = field(default_factory=HttpServerConfig)
    basic_auth_users: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"check": check_user_names, "check_each": check_bcrypt_hash},
    )


def server_context(settings: TlsServerConfig) -> ssl.SSLContext:
    """A server SSLContext with every setting of `tls_server_config`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    apply_modes(context, settings)
    context.load_cert_chain(settings.cert_file, settings.key_file)
    if settings.client_ca_file:
        context.load_verify_locations(cafile=settings.client_ca_file)
    return context


def apply_modes(context: ssl.SSLContext, settings: TlsServerConfig) -> None:
    """The settings OpenSSL copies into each connection when it starts (versions, ciphers,
    client verification, options): applied to the listener's own context on a change."""
    context.minimum_version = TLS_VERSIONS[settings.min_version]
    context.maximum_version = TLS_VERSIONS[settings.max_version]
    mode = CLIENT_AUTH[settings.client_auth_type]
    context.verify_mode = ssl.CERT_NONE if mode is None else mode
    context.set_ciphers(openssl_ciphers(settings.cipher_suites) or "DEFAULT")
    if settings.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE


def load_web_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> WebConfigFile:
    """Read and check a toolkit web config; ConfigError lists `FILE: key.path: problem`."""
    file = Path(path)
    try:
        text = decode_text(read_regular_file(file, CONFIG_FILE_LIMIT), str(file))
        data = yaml.safe_load(text)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            [f"{file}: not valid YAML: {getattr(exc, 'problem', None) or exc}"]
        ) from None
    except RecursionError:
        raise ConfigError([f"{file}: nested too deeply to be a web config"]) from None
    if data is not None and (not isinstance(data, Mapping) or nesting_depth(data, 8) > 8):
        raise ConfigError([f"{file}: expected the toolkit's web config mapping"])
    data = _resolve_paths(dict(data or {}), file.parent)
    loader = Loader(env=os.environ if env is None else env, base_dir=file.parent)
    built = loader.build(WebConfigFile, data, "")
    if loader.problems or built is None:
        raise ConfigError([f"{file}: {problem}" for problem in loader.problems])
    return built


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    tls = data.get("tls_server_config")
    if isinstance(tls, Mapping):
        tls = dict(tls)
        for key in _PATH_KEYS:
            value = tls.get(key)
            if isinstance(value, str) and value and "\0" not in value:
                tls[key] = str(base / value)
        data["tls_server_config"] = tls
    return data


def conflicts(web: WebConfig, file: WebConfigFile, source: str) -> list[str]:
    """Settings made both in `web:` and in the web config file: refused, set each once."""
    found = []
    if web.tls_cert_file and file.tls_server_config is not None:
        found.append(f"web.tls_cert_file: TLS is also set by {source} (tls_server_config)")
    if web.basic_auth_users and file.basic_auth_users:
        found.append(f"web.basic_auth_users: users are also set by {source} (basic_auth_users)")
    return [f"{problem}; set it in one place" for problem in found]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


class WebConfigWatcher:
    """The current web config file, re-read when it changes; listeners hear of each change."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._clock = clock
        self._stamp = _stamp(self.path)
        self.config = load_web_config(self.path)
        self._checked = clock()
        self.last_reload_ok = True
        self.listeners: list[Callable[[WebConfigFile], None]] = []

    def current(self) -> WebConfigFile:
        """The config, re-read first if the file changed (looked at once a second at most)."""
        now = self._clock()
        if now - self._checked >= CHECK_INTERVAL_SECONDS:
            self._checked = now
            if _stamp(self.path) != self._stamp:
                self.reload()
        return self.config

    def reload(self) -> bool:
        """Read the file again; False (logged, the old config kept) when it does not load."""
        self._stamp = _stamp(self.path)
        try:
            config = load_web_config(self.path)
        except ConfigError as exc:
            self.last_reload_ok = False
            log.error(
                "web config %s refused, keeping the previous one: %s", self.path, exc.one_line()
            )
            return False
        if (config.tls_server_config is None) != (self.config.tls_server_config is None):
            log.warning("web config %s: turning TLS on or off takes a restart", self.path)
        self.config = config
        self.last_reload_ok = True
        for listener in self.listeners:
            listener(config)
        log.info("web config reloaded from %s", self.path)
        return True


class LiveTLS:
    """The listener's SSLContext, kept up to date with the watched `tls_server_config`.

    Every handshake first asks the watcher (so a changed file is seen, as the toolkit sees
    it per connection), then switches the connection to the newest context: its certificate,
    key and client CAs. Versions, ciphers and client verification are copied by OpenSSL when a
    connection starts, so they are applied to the listener's own context on each change.
    """

    def __init__(self, watcher: WebConfigWatcher) -> None:
        settings = watcher.config.tls_server_config
        assert settings is not None
        self.watcher = watcher
        self.context = server_context(settings)
        self._newest = self.context
        self.context.sni_callback = self._on_hello
        watcher.listeners.append(self._update)

    def _update(self, config: WebConfigFile) -> None:
        settings = config.tls_server_config
        if settings is None:
            return
        try:
            newest = server_context(settings)
            apply_modes(self.context, settings)
        except (OSError, ssl.SSLError) as exc:  # changed again since it was checked
            log.error("web config %s: TLS settings not applied: %s", self.watcher.path, exc)
            return
        self._newest = newest

    def _on_hello(self, connection: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        self.watcher.current()
        if self._newest is not self.context:
            connection.context = self._newest


class SecurityHeaders:
    """Pure ASGI: adds `http_server_config.headers` of the current web config to answers."""

    def __init__(self, app: Any, watcher: WebConfigWatcher) -> None:
        self.app = app
        self.watcher = watcher

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = self.watcher.current().http_server_config.headers
        if not headers:
            await self.app(scope, receive, send)
            return
        extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
