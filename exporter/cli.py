"""The command line: flags -> a frozen Config -> run it, check it, or scrape once.

afirgen-exporter [--config FILE] [--web.listen-address HOST:PORT]
                 [--collector.NAME | --no-collector.NAME ...] [--log.level LEVEL]
afirgen-exporter check-config FILE
afirgen-exporter once [--config FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from collectors.base import Deadline
from collectors.catalog import CATALOG
from exporter import __version__, logs
from exporter.config import Config, load_config, read_config, with_overrides
from exporter.schema import ConfigError
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="afirgen-exporter",
        description="Prometheus exporter for a Python ML backend.",
        epilog="Commands: 'check-config FILE' validates a config; 'once' prints one scrape.",
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
            help=argparse.SUPPRESS,
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
    return Invocation(command, config_file, ns.listen_address, toggles, ns.log_level)


def load(invocation: Invocation) -> Config:
    config = read_config(invocation.config_file) if invocation.config_file else load_config({})
    return with_overrides(
        config, listen_address=invocation.listen_address, collectors=invocation.collectors
    )


def main(argv: Sequence[str] | None = None) -> int:
    invocation = parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(invocation.log_level)
    try:
        config = load(invocation)
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
    if invocation.command == "check-config":
        units = exporter.loaded.units
        kinds = ", ".join(exporter.loaded.enabled_kinds()) or "none"
        print(f"{invocation.config_file}: OK ({len(units)} targets; collectors: {kinds})")
        exporter.loaded.engine.close()
        return 0
    if invocation.command == "once":
        return asyncio.run(_once(exporter))
    from exporter.server import serve

    serve(exporter, log_level=invocation.log_level)
    return 0


async def _once(exporter: Exporter) -> int:
    loaded = exporter.loaded
    deadline = Deadline.after(loaded.config.scrape.default_timeout_seconds)
    body = await loaded.engine.render_families_text(loaded.metrics_units(), deadline)
    sys.stdout.write(body.decode())
    sys.stdout.flush()
    await exporter.aclose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
