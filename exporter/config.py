"""The exporter's configuration: one YAML file loaded by one pure function into frozen objects.

`load_config(data, env=..., base_dir=...)` takes parsed YAML and returns a `Config` or raises
`ConfigError` listing every problem as `key.path: what is wrong`. `read_config(path)` adds the
file reading and YAML parsing. Collector sections (`databases:`, `redis:` ...) come from the
collector catalog, so this module knows nothing about any one source.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from collectors.catalog import BY_NAME, BY_SECTION, CATALOG, CollectorSpec
from collectors.checks import (
    check_existing_file,
    check_limit,
    check_non_negative,
    check_positive,
)
from exporter.files import CONFIG_FILE_LIMIT, decode_text, read_regular_file
from exporter.schema import ConfigError, Loader, describe, unknown_key_message
from exporter.tls import check_server_pair

DEFAULT_LISTEN_ADDRESS = "127.0.0.1:9864"
#: No config needs lists and mappings nested deeper than this.
MAX_DEPTH = 32
_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")
_NAMESPACE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")
#: bcrypt's own bounds start at 4; above 14 one check costs over a second of CPU.
MIN_BCRYPT_COST = 4
MAX_BCRYPT_COST = 14


def parse_listen_address(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); ValueError says what is wrong."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{value!r} is not HOST:PORT")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    elif not host:
        raise ValueError(f"{value!r} has no host (use 0.0.0.0:{port} to listen everywhere)")
    elif not re.fullmatch(r"[A-Za-z0-9.\-]+", host):
        raise ValueError(f"{host!r} is not a host name or IPv4 address")
    return host, port


def check_listen_address(value: str) -> str:
    parse_listen_address(value)
    return value


def check_bcrypt_hash(hashed: str) -> str:
    """A bcrypt hash whose cost the exporter can afford to check on every new credential."""
    if not _BCRYPT_HASH.match(hashed):
        raise ValueError("not a bcrypt hash (expected $2b$<cost>$...)")
    cost = int(hashed.split("$")[2])
    if not MIN_BCRYPT_COST <= cost <= MAX_BCRYPT_COST:
        raise ValueError(
            f"bcrypt cost {cost} is outside {MIN_BCRYPT_COST}-{MAX_BCRYPT_COST} (each step "
            "doubles the CPU of a check; 10-12 is usual)"
        )
    return hashed


def check_user_names(users: Mapping[str, str]) -> Mapping[str, str]:
    """Basic auth ends the user name at the first ':' (RFC 7617): such a user cannot log in."""
    for name in users:
        if ":" in name:
            raise ValueError(
                f"user name {name[:64]!r} contains ':', which basic auth cannot carry "
                "(the first ':' ends the user name)"
            )
    return users


def check_gzip_level(value: int) -> int:
    if not 1 <= value <= 9:
        raise ValueError(f"must be 1-9, got {value}")
    return value


def check_namespace(value: str) -> str:
    if value and not _NAMESPACE.match(value):
        raise ValueError(f"{value!r} is not a valid metric name prefix")
    return value


@dataclass(frozen=True)
class WebConfig:
    listen_address: str = field(
        default=DEFAULT_LISTEN_ADDRESS, metadata={"check": check_listen_address}
    )
    tls_cert_file: str | None = field(default=None, metadata={"check": check_existing_file})
    tls_key_file: str | None = field(default=None, metadata={"check": check_existing_file})
    basic_auth_users: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"check": check_user_names, "check_each": check_bcrypt_hash},
    )
    #: Each client address may cause this many bcrypt checks at once...
    basic_auth_checks_burst: int = field(default=5, metadata={"check": check_limit})
    #: ...refilled at this rate; beyond it a request is answered 429 without running bcrypt.
    basic_auth_checks_per_minute: float = field(default=30.0, metadata={"check": check_positive})
    #: A connection whose request headers are not complete this long after it opened (or
    #: after the first byte of a next request) is closed: slowloris clients hold no FDs.
    header_timeout_seconds: float = field(default=5.0, metadata={"check": check_positive})
    #: Open connections at most (also bounded by the FD limit); a new one beyond it closes the
    #: oldest connection still waiting for its headers.
    max_connections: int = field(default=1024, metadata={"check": check_limit})
    #: An idle kept-alive connection is closed after this long.
    keep_alive_timeout_seconds: float = field(default=5.0, metadata={"check": check_positive})
    #: Answer the text format even when the client would also take OpenMetrics: it is cheaper
    #: to encode, and it is what the Go exporters answer. Clients that accept only OpenMetrics
    #: still get it.
    prefer_text_format: bool = True

    def __post_init__(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_cert_file and self.tls_key_file:
            check_server_pair(
                self.tls_cert_file,
                self.tls_key_file,
                cert_key="tls_cert_file",
                key_key="tls_key_file",
            )

    @property
    def host(self) -> str:
        return parse_listen_address(self.listen_address)[0]

    @property
    def port(self) -> int:
        return parse_listen_address(self.listen_address)[1]


@dataclass(frozen=True)
class ScrapeConfig:
    timeout_offset_seconds: float = field(default=0.25, metadata={"check": check_non_negative})
    default_timeout_seconds: float = field(default=10.0, metadata={"check": check_positive})
    #: Upper bound on the deadline whatever the scrape header says.
    max_timeout_seconds: float = field(default=120.0, metadata={"check": check_positive})
    #: A header below this is raised to it: a client asking with a tiny timeout gets a useful
    #: answer and cannot make the sources be asked hundreds of times a second; 0 turns it off.
    min_timeout_seconds: float = field(default=0.5, metadata={"check": check_non_negative})
    #: gzip level of compressed answers: 1 costs a fifth of 6's CPU for bodies ~15% larger
    #: (benchmarks/full_stack.py: 0.06 vs 0.34 ms on a 45 kB full-stack body).
    gzip_level: int = field(default=1, metadata={"check": check_gzip_level})
    #: Serve `_created` series: created timestamps of counters, histograms and summaries
    #: (separate series in the text formats, `created_timestamp` in protobuf).
    created_series: bool = True


@dataclass(frozen=True)
class CollectorSettings:
    """`collectors.<name>:` — on or off, plus the collector's own `Options`, if it has any."""

    enabled: bool
    options: Any = None


@dataclass(frozen=True)
class Config:
    web: WebConfig = field(default_factory=WebConfig)
    scrape: ScrapeConfig = field(default_factory=ScrapeConfig)
    namespace: str = ""
    collectors: Mapping[str, CollectorSettings] = field(
        default_factory=lambda: types.MappingProxyType({})
    )
    #: section name (`redis`, `databases`...) -> its targets, in file order
    targets: Mapping[str, tuple[Any, ...]] = field(
        default_factory=lambda: types.MappingProxyType({})
    )
    #: every secret value read from the file, the environment or a secret file (for redaction)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    source: str | None = None

    def enabled(self, name: str) -> bool:
        settings = self.collectors.get(name)
        return settings.enabled if settings else BY_NAME[name].default_enabled

    def options(self, name: str) -> Any:
        settings = self.collectors.get(name)
        return settings.options if settings else None


TOP_LEVEL_KEYS = ("web", "scrape", "namespace", "collectors", *BY_SECTION)


def load_config(
    data: Any,
    *,
    env: Mapping[str, str] | None = None,
    base_dir: Path | str = ".",
    source: str | None = None,
) -> Config:
    """Parsed YAML -> Config. Raises ConfigError with every problem found."""
    loader = Loader(env=os.environ if env is None else env, base_dir=Path(base_dir))
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"the config must be a mapping at the top level, got {describe(data)}"])
    if nesting_depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise ConfigError([f"the config nests lists and mappings more than {MAX_DEPTH} deep"])
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            loader.problem(str(key), unknown_key_message(str(key), list(TOP_LEVEL_KEYS)))
    web = loader.build(WebConfig, data.get("web"), "web")
    scrape = loader.build(ScrapeConfig, data.get("scrape"), "scrape")
    namespace = data.get("namespace", "") or ""
    if not isinstance(namespace, str):
        loader.problem("namespace", f"expected a string, got {describe(namespace)}")
        namespace = ""
    else:
        try:
            check_namespace(namespace)
        except ValueError as exc:
            loader.problem("namespace", str(exc))
    collectors = _load_collectors(loader, data.get("collectors"))
    targets = _load_targets(loader, data)
    if loader.problems:
        raise ConfigError(loader.problems)
    assert web is not None and scrape is not None
    return Config(
        web=web,
        scrape=scrape,
        namespace=namespace,
        collectors=types.MappingProxyType(collectors),
        targets=types.MappingProxyType(targets),
        secrets=tuple(dict.fromkeys(loader.secrets)),
        source=source,
    )


def _load_collectors(loader: Loader, data: Any) -> dict[str, CollectorSettings]:
    result = {spec.name: CollectorSettings(spec.default_enabled) for spec in CATALOG}
    if data is None:
        return result
    if not isinstance(data, Mapping):
        loader.problem("collectors", f"expected a mapping, got {describe(data)}")
        return result
    for name, body in data.items():
        path = f"collectors.{name}"
        spec = BY_NAME.get(str(name))
        if spec is None:
            loader.problem(path, unknown_key_message(str(name), list(BY_NAME), "collector"))
            continue
        body = {} if body is None else body
        if not isinstance(body, Mapping):
            loader.problem(path, f"expected a mapping, got {describe(body)}")
            continue
        body = dict(body)
        enabled = body.pop("enabled", spec.default_enabled)
        if not isinstance(enabled, bool):
            loader.problem(f"{path}.enabled", f"expected true or false, got {describe(enabled)}")
            continue
        if not enabled and not body:
            # `{enabled: false}` alone: its module (and client library) is never imported
            result[spec.name] = CollectorSettings(False)
            continue
        options_type = getattr(spec.load(), "Options", None)
        options = None
        if options_type is not None:
            options = loader.build(options_type, body, path)
        elif body:
            for key in body:
                loader.problem(f"{path}.{key}", "unknown key (allowed: enabled)")
        result[spec.name] = CollectorSettings(enabled, options)
    return result


def _load_targets(loader: Loader, data: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    targets: dict[str, tuple[Any, ...]] = {}
    seen: dict[str, str] = {}
    for section, spec in BY_SECTION.items():
        entries = data.get(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            loader.problem(section, f"expected a list, got {describe(entries)}")
            continue
        target_type = _target_type(spec)
        built = []
        for index, entry in enumerate(entries):
            path = f"{section}[{index}]"
            target = loader.build(target_type, entry, path)
            if target is None:
                continue
            name = target.name
            if not _TARGET_NAME.match(name):
                loader.problem(f"{path}.name", f"{name!r} must be 1-63 letters, digits, _ . -")
            elif name in seen:
                loader.problem(f"{path}.name", f"{name!r} is already used by {seen[name]}")
            else:
                seen[name] = path
            built.append(target)
        targets[section] = tuple(built)
    return targets


def _target_type(spec: CollectorSpec) -> type[Any]:
    target_type = getattr(spec.load(), "Target", None)
    if not isinstance(target_type, type) or not dataclasses.is_dataclass(target_type):
        raise TypeError(f"collector module {spec.module} has no Target dataclass")
    return target_type


def read_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and load a YAML config file; every failure is a ConfigError naming the file."""
    file = Path(path)
    try:
        text = decode_text(read_regular_file(file, CONFIG_FILE_LIMIT), str(file))
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{file}: not valid YAML{where}: {problem}"]) from None
    except RecursionError:
        raise ConfigError([f"{file}: nested too deeply to be a config"]) from None
    return load_config(data, env=env, base_dir=file.parent, source=str(file))


def nesting_depth(data: Any, limit: int) -> int:
    """How deeply lists and mappings nest in `data`, counted up to `limit` + 1 (iteratively:
    deep input must not exhaust the stack, and YAML aliases are walked once)."""
    deepest = 0
    seen: set[int] = set()
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if not isinstance(value, Mapping | list | tuple) or id(value) in seen:
            continue
        seen.add(id(value))
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        items = value.values() if isinstance(value, Mapping) else value
        todo.extend((item, depth + 1) for item in items)
    return deepest


def with_overrides(
    config: Config,
    *,
    listen_address: str | None = None,
    collectors: Mapping[str, bool] | None = None,
) -> Config:
    """The config with command-line switches applied (they win over the file)."""
    problems: list[str] = []
    web = config.web
    if listen_address is not None:
        try:
            check_listen_address(listen_address)
            web = dataclasses.replace(web, listen_address=listen_address)
        except ValueError as exc:
            problems.append(f"--web.listen-address: {exc}")
    settings = dict(config.collectors)
    for name, enabled in (collectors or {}).items():
        if name not in BY_NAME:
            problems.append(f"--collector.{name}: unknown collector (known: {', '.join(BY_NAME)})")
            continue
        current = settings.get(name) or CollectorSettings(BY_NAME[name].default_enabled)
        settings[name] = dataclasses.replace(current, enabled=enabled)
    if problems:
        raise ConfigError(problems)
    return dataclasses.replace(config, web=web, collectors=types.MappingProxyType(settings))
