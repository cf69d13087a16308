"""The ``kumocore`` command line: serve, validate, plugins, logs, and admin commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from kumocore import __version__
from kumocore.diagnostics import configure_diagnostics
from kumocore.errors import ConfigError, HookError, PolicyError
from kumocore.plugins import PluginLoadError


def _add_policy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="policy file (.lua or .py)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kumocore", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kumocore {__version__}")
    parser.add_argument("--log-level", default="info", help="diagnostic log level")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the MTA")
    _add_policy(serve)
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds to finish in-flight work on SIGTERM/SIGINT",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("KUMOCORE_WORKERS", "1")),
        help="worker processes sharing the listeners, each with its own spool shard "
        "(default: $KUMOCORE_WORKERS or 1)",
    )

    validate = commands.add_parser("validate", help="load a policy, run init, report errors")
    _add_policy(validate)

    commands.add_parser("plugins", help="list loaded plugins and the hooks they implement")

    try:
        from kumocore.logs.cli import add_logs_subcommand
    except ImportError:  # pragma: no cover - the logs reader is part of core
        pass
    else:
        add_logs_subcommand(commands)

    try:
        from kumocore.admin.cli import add_admin_subcommands
    except ImportError:
        pass
    else:
        add_admin_subcommands(commands)
    return parser


async def _validate(policy: str) -> int:
    from kumocore.runtime import Runtime

    runtime = Runtime()
    await runtime.load(policy)
    config = runtime.config
    print(
        f"policy {policy} OK: {len(config.spools)} spools, "
        f"{len(config.esmtp_listeners)} ESMTP and {len(config.http_listeners)} HTTP "
        f"listeners, {len(config.egress_sources)} egress sources, "
        f"{len(config.egress_pools)} egress pools"
    )
    return 0


def _plugins() -> int:
    from kumocore.plugins import describe_plugins
    from kumocore.runtime import Runtime

    runtime = Runtime()
    for info in describe_plugins(runtime.pm):
        origin = f"{info.distribution} {info.version}" if info.distribution else "built into core"
        print(f"{info.name}  ({origin})")
        for hook in info.hooks:
            print(f"    {hook}")
    return 0


async def _serve(policy: str, shutdown_timeout: float) -> int:
    from kumocore.server import serve

    return await serve(policy, shutdown_timeout=shutdown_timeout)


def _run(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (faster sockets), else on asyncio's own loop.

    ``KUMOCORE_EVENT_LOOP=asyncio`` forces the standard loop (for comparisons and debugging).
    """
    if os.environ.get("KUMOCORE_EVENT_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_diagnostics(args.log_level)
    if args.command == "serve":
        from kumocore.fsmode import restrict_umask

        restrict_umask()  # spool, logs, RocksDB's own files: owner only (workers inherit it)
    try:
        if args.command == "validate":
            return asyncio.run(_validate(args.policy))
        if args.command == "plugins":
            return _plugins()
        if args.command == "serve" and args.workers > 1:
            from kumocore.workers import supervise

            return supervise(
                args.policy,
                workers=args.workers,
                log_level=args.log_level,
                shutdown_timeout=args.shutdown_timeout,
            )
        if args.command == "serve":
            return _run(_serve(args.policy, args.shutdown_timeout))
        handler = getattr(args, "handler", None)
        if handler is None:
            raise SystemExit(f"unknown command {args.command!r}")
        return int(handler(args) or 0)
    except (ConfigError, PolicyError, HookError, PluginLoadError) as exc:
        print(f"kumocore: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
