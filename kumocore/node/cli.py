"""The ``kumocore`` command line: serve, validate, plugins, logs, and admin commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from kumocore import __version__
from kumocore.errors import ConfigError, HookError, PolicyError
from kumocore.node.diagnostics import configure_diagnostics
from kumocore.node.validate_cli import _validate
from kumocore.policy.plugins import PluginLoadError

# What ``kumocore --help`` shows (the module docstring above is for readers of the code).
DESCRIPTION = """\
kumocore: a mail transfer agent for bulk and transactional senders that runs
KumoMTA-style Lua (or Python) policies and is extended by pip-installable plugins."""

EPILOG = """\
examples:
  kumocore serve --policy policy.lua             run the MTA, one worker per core
                                                 (SIGTERM/SIGINT: graceful stop)
  kumocore serve --policy policy.lua --workers 1 one process
  kumocore validate --policy policy.lua          load the policy, report errors, exit
  kumocore serve --policy "$(kumocore default-policy)" --log-level debug
  kumocore logs cat var/logs --format text       read the log, one line per record
  kumocore sink --dir var/sink                   a local SMTP server saving what it gets
  kumocore queue summary                         queues of a running node (HTTP API)

Exit status: 0 success, 1 failure, 2 configuration error (bad policy, option or listener)."""

LOG_LEVELS = ("debug", "info", "warning", "error")


def _add_policy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="policy file (.lua or .py)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value


def cores() -> int:
    """The CPUs this process may run on (its affinity mask: a container's or a
    ``taskset``'s limit), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _default_workers() -> int:
    """One worker per core, unless ``$KUMOCORE_WORKERS`` says otherwise."""
    raw = os.environ.get("KUMOCORE_WORKERS")
    if raw is None:
        return cores()
    try:
        return _positive_int(raw)
    except argparse.ArgumentTypeError as exc:
        raise SystemExit(f"kumocore: error: KUMOCORE_WORKERS={raw!r}: {exc}") from None


def _accept_log_level_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` works before and after any subcommand (``serve --log-level debug``).

    Subcommand copies default to SUPPRESS so that they only override when given.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
                                 help="diagnostic log level (default: info)")  # fmt: skip
                _accept_log_level_everywhere(sub)


def _command(commands: Any, name: str, summary: str, description: str) -> Any:
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kumocore",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kumocore {__version__}")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS,
                        help="diagnostic log level (default: info)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _command(commands, "serve", "run the MTA",
                     "Load the policy, recover the spool, open the listeners and deliver "
                     "until SIGTERM/SIGINT, then stop gracefully. Example: kumocore serve "
                     "--policy /etc/kumocore/policy.lua --workers 2")  # fmt: skip
    _add_policy(serve)
    _add_allow_unsupported(serve)
    serve.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=10.0,
        help="seconds to finish in-flight work on SIGTERM/SIGINT",
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=_default_workers(),
        help="worker processes sharing the listeners, each with its own spool shard; "
        "the default is one per core ($KUMOCORE_WORKERS changes it); changing it between "
        "runs moves the spooled mail to the new shards",
    )

    validate = _command(commands, "validate", "load a policy, run init, report errors",
                        "Load the policy and run its init and validation steps without "
                        "opening listeners; print a summary, or each problem with its file "
                        "and line. Exit 0 when valid; 1 when a check finds an error (an option a "
                        "handler's kumo.make_* refuses, a handler's answer of the wrong type, "
                        "a validate_config failure); 2 when the policy does not load or its "
                        "init fails. Example: "
                        "kumocore validate --policy policy.lua")  # fmt: skip
    _add_policy(validate)
    _add_allow_unsupported(validate)
    validate.add_argument("--domain", action="append", default=[],
                          help="a recipient domain to ask the handlers about (repeatable; "
                          "default: the listener domains, else example.com)")  # fmt: skip
    validate.add_argument(
        "--tenant",
        action="append",
        default=[],
        help="a tenant to ask get_queue_config about (repeatable)",
    )

    _command(commands, "plugins", "list loaded plugins and the hooks they implement",
             "List every plugin kumocore loads (built-in and pip-installed), the "
             "distribution it comes from and the hooks it implements.")  # fmt: skip

    try:
        from kumocore.logs.cli import add_logs_subcommand
    except ImportError:  # pragma: no cover - the logs reader is part of core
        pass
    else:
        add_logs_subcommand(commands)

    from kumocore.node.packaging import add_packaging_subcommands
    from kumocore.node.sink import add_sink_subcommand
    from kumocore.policy.explain_cli import add_explain_subcommand

    add_explain_subcommand(commands)
    add_packaging_subcommands(commands)
    add_sink_subcommand(commands)

    try:
        from kumocore.admin.cli import add_admin_subcommands
    except ImportError:
        pass
    else:
        add_admin_subcommands(commands)
        from kumocore.tsa.cli import add_tsa_subcommand

        add_tsa_subcommand(commands)
        from kumocore.proxy.cli import add_proxy_subcommand

        add_proxy_subcommand(commands)
    _accept_log_level_everywhere(parser)
    return parser


def _add_allow_unsupported(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unsupported",
        action="store_true",
        help="load a policy that sets KumoMTA options kumocore does not implement yet, "
        "ignoring them (each is logged as a warning); without it such a policy is refused",
    )


def _plugins() -> int:
    from kumocore.node.runtime import Runtime
    from kumocore.policy.plugins import describe_plugins

    runtime = Runtime()
    for info in describe_plugins(runtime.pm):
        origin = f"{info.distribution} {info.version}" if info.distribution else "built into core"
        print(f"{info.name}  ({origin})")
        for hook in info.hooks:
            print(f"    {hook}")
    return 0


async def _serve(policy: str, shutdown_timeout: float) -> int:
    from kumocore.node.serve import serve

    return await serve(policy, shutdown_timeout=shutdown_timeout)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_diagnostics(args.log_level)
    if getattr(args, "allow_unsupported", False):
        from kumocore.config.unsupported import allow_unsupported

        # In the environment, so that worker processes inherit it.
        allow_unsupported()
        if args.command == "serve":
            import structlog

            structlog.get_logger("kumocore.config").warning(
                "--allow-unsupported: KumoMTA options kumocore does not implement are "
                "ignored; each is listed as a warning when the policy sets it"
            )
    if args.command == "serve":
        from kumocore.node.fsmode import restrict_umask

        restrict_umask()  # spool, logs, RocksDB's own files: owner only (workers inherit it)
    try:
        if args.command == "validate":
            return asyncio.run(_validate(args.policy, args.domain, args.tenant))
        if args.command == "plugins":
            return _plugins()
        if args.command == "serve" and args.workers > 1:
            from kumocore.node.supervisor import supervise

            return supervise(
                args.policy,
                workers=args.workers,
                log_level=args.log_level,
                shutdown_timeout=args.shutdown_timeout,
            )
        if args.command == "serve":
            from kumocore.node.loop import run

            return run(_serve(args.policy, args.shutdown_timeout))
        handler = getattr(args, "handler", None)
        if handler is None:
            raise SystemExit(f"unknown command {args.command!r}")
        return int(handler(args) or 0)
    except (ConfigError, PolicyError, HookError, PluginLoadError) as exc:
        print(f"kumocore: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
