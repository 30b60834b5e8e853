"""The command line: flags -> a frozen Config -> run it, check it, or scrape once.

afirgen-exporter [--config FILE] [--web.listen-address HOST:PORT] [--web.config.file FILE]
                 [--web.enable-lifecycle]
                 [--collector.NAME | --no-collector.NAME ...] [--log.level LEVEL]
afirgen-exporter check-config FILE [--web.config.file FILE]
afirgen-exporter once [--config FILE]
afirgen-exporter dashboards|rules --out DIR
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collectors.catalog import CATALOG
from exporter import __version__, footprint, logs, shipped
from exporter.config import Config, load_config, read_config, with_overrides
from exporter.schema import ConfigError
from exporter.webconfig import WebConfigFile, WebConfigWatcher, conflicts

if TYPE_CHECKING:
    from exporter.state import Exporter

EXIT_CONFIG_ERROR = 2


@dataclass(frozen=True)
class Invocation:
    """What the command line asked for, before any file is read."""

    command: str  # "run", "check-config" or "once"
    config_file: str | None = None
    listen_address: str | None = None
    collectors: dict[str, bool] = field(default_factory=dict)
    log_level: str = "info"
    enable_lifecycle: bool = False
    web_config_file: str | None = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="afirgen-exporter",
        description="Prometheus exporter for a Python ML backend.",
        epilog="Commands: 'check-config FILE' validates a config; 'once' prints one scrape; "
        "'dashboards --out DIR' and 'rules --out DIR' write the shipped Grafana dashboards "
        "and Prometheus rules.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        "--config.file",
        dest="config_file",
        metavar="FILE",
        help="YAML config (default: built-in defaults)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="HOST:PORT",
        help="address to listen on (overrides web.listen_address)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="Prometheus exporter-toolkit web config (TLS, mTLS, basic auth, headers)",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="enable POST/PUT /-/reload (off: 403; SIGHUP always reloads)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=["debug", "info", "warning", "error"],
    )
    for spec in CATALOG:
        state = "on" if spec.default_enabled else "off"
        parser.add_argument(
            f"--collector.{spec.name}",
            dest=f"collector_{spec.name}",
            action="store_const",
            const=True,
            help=f"enable the {spec.name} collector (default {state})",
        )
        parser.add_argument(
            f"--no-collector.{spec.name}",
            dest=f"collector_{spec.name}",
            action="store_const",
            const=False,
            help=f"disable the {spec.name} collector",
        )
    return parser


def parse_args(argv: Sequence[str]) -> Invocation:
    args = list(argv)
    command = "run"
    positional_config: str | None = None
    if args and args[0] in ("check-config", "once"):
        command = args.pop(0)
        if command == "check-config" and args and not args[0].startswith("-"):
            positional_config = args.pop(0)
    ns = build_parser().parse_args(args)
    config_file = positional_config or ns.config_file
    if command == "check-config" and not config_file:
        build_parser().error("check-config needs a FILE")
    toggles = {
        spec.name: value
        for spec in CATALOG
        if (value := getattr(ns, f"collector_{spec.name}")) is not None
    }
    return Invocation(
        command,
        config_file,
        ns.listen_address,
        toggles,
        ns.log_level,
        ns.enable_lifecycle,
        ns.web_config_file,
    )


def load(invocation: Invocation) -> Config:
    config = read_config(invocation.config_file) if invocation.config_file else load_config({})
    return with_overrides(
        config, listen_address=invocation.listen_address, collectors=invocation.collectors
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in shipped.COMMANDS:
        return shipped.main(args)
    invocation = parse_args(args)
    logs.configure(invocation.log_level)
    footprint.defer_package_inits()
    with footprint.unused_imports_absent():
        return _run(invocation)


def _run(invocation: Invocation) -> int:
    from exporter.state import Exporter

    try:
        config = load(invocation)
        web_config = load_web(invocation, config)
        if invocation.command == "check-config":
            # validation only: no collector, client, pool or socket is made
            print(f"{invocation.config_file}: OK ({summary(config)})")
            if web_config is not None:
                print(f"{invocation.web_config_file}: OK ({web_summary(web_config.config)})")
            return 0
        exporter = Exporter(
            config,
            reload_overrides={
                "listen_address": invocation.listen_address,
                "collectors": invocation.collectors,
            },
        )
    except ConfigError as exc:
        print(f"afirgen-exporter: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if invocation.command == "once":
        return asyncio.run(_once(exporter))
    from exporter.server import serve

    serve(
        exporter,
        log_level=invocation.log_level,
        lifecycle=invocation.enable_lifecycle,
        web_config=web_config,
    )
    return 0


def load_web(invocation: Invocation, config: Config) -> WebConfigWatcher | None:
    """The `--web.config.file`, checked, and refused when it sets what `web:` also sets."""
    if invocation.web_config_file is None:
        return None
    watcher = WebConfigWatcher(invocation.web_config_file)
    problems = conflicts(config.web, watcher.config, invocation.web_config_file)
    if problems:
        raise ConfigError(problems)
    return watcher


def web_summary(web: WebConfigFile) -> str:
    tls = web.tls_server_config
    parts = [
        f"TLS {tls.min_version}-{tls.max_version}, {tls.client_auth_type}" if tls else "no TLS"
    ]
    parts.append(f"{len(web.basic_auth_users)} basic auth users")
    return "; ".join(parts)


def summary(config: Config) -> str:
    """`N targets; collectors: a, b`, counted from the config alone."""
    targets = 0
    names = []
    for spec in CATALOG:
        count = 1 if spec.section is None else len(config.targets.get(spec.section, ()))
        if spec.section is None and not config.enabled(spec.name):
            count = 0
        targets += count
        if count and config.enabled(spec.name):
            names.append(spec.name)
    return f"{targets} targets; collectors: {', '.join(sorted(names)) or 'none'}"


async def _once(exporter: Exporter) -> int:
    from collectors.base import Deadline

    loaded = exporter.loaded
    deadline = Deadline.after(loaded.config.scrape.default_timeout_seconds)
    body = await loaded.engine.render_families_text(loaded.metrics_units(), deadline)
    sys.stdout.write(body.decode())
    sys.stdout.flush()
    await exporter.aclose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
