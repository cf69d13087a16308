"""``kumocore proxy serve`` / ``kumocore proxy validate``: KumoMTA's proxy-server command.

``serve --proxy-config FILE`` runs a KumoProxy policy. KumoMTA's older command line,
``--listen IP:PORT`` (repeatable) with ``--no-splice`` and ``--timeout-seconds N``, is kept
as KumoMTA keeps it: it writes the equivalent policy (one listener per ``--listen``) to a
temporary file and runs that. The two forms are mutually exclusive.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

#: KumoMTA's default of --timeout-seconds.
DEFAULT_TIMEOUT_SECONDS = 60


def legacy_policy(listen: list[str], timeout_seconds: int, no_splice: bool) -> str:
    """The policy KumoMTA generates from the legacy options."""
    lines = ["local kumo = require 'kumo'", "local proxy = require 'proxy'", "",
             "kumo.on('proxy_init', function()"]  # fmt: skip
    for address in listen:
        lines += ["  proxy.start_proxy_listener {", f"    listen = {_lua_string(address)},",
                  f"    timeout = '{timeout_seconds} seconds',"]  # fmt: skip
        if no_splice:
            lines.append("    use_splice = false,")
        lines.append("  }")
    lines.append("end)")
    return "\n".join(lines) + "\n"


def _lua_string(text: str) -> str:
    # %q-style quoting so that an odd --listen value cannot change the policy's code.
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _serve(args: argparse.Namespace) -> int:
    from kumocore.node.service_cli import run_service
    from kumocore.proxy.daemon import serve

    legacy = bool(args.listen or args.no_splice or args.timeout_seconds is not None)
    if args.proxy_config and legacy:
        print("kumocore proxy serve: --proxy-config cannot be used with --listen, "
              "--no-splice or --timeout-seconds", file=sys.stderr)  # fmt: skip
        return 2
    if not args.proxy_config and not args.listen:
        print("kumocore proxy serve: no configuration: give --proxy-config FILE (a Lua "
              "policy), or --listen IP:PORT (KumoMTA's legacy command line)",
              file=sys.stderr)  # fmt: skip
        return 2
    with tempfile.TemporaryDirectory(prefix="kumocore-proxy-") as tmp:
        policy = args.proxy_config
        if policy is None:
            timeout = args.timeout_seconds
            text = legacy_policy(args.listen, DEFAULT_TIMEOUT_SECONDS if timeout is None
                                 else timeout, args.no_splice)  # fmt: skip
            policy = str(Path(tmp) / "kumo-proxy-config.lua")
            Path(policy).write_text(text)
        return run_service("proxy serve", serve(policy))


def _validate(args: argparse.Namespace) -> int:
    from kumocore.node.service_cli import run_service
    from kumocore.proxy.daemon import validate

    return run_service("proxy validate", validate(args.proxy_config), show=True)


def add_proxy_subcommand(subparsers: Any) -> None:
    proxy = subparsers.add_parser("proxy", help="KumoProxy: a SOCKS5 proxy that MTAs send through")
    commands = proxy.add_subparsers(dest="proxy_command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the SOCKS5 proxy (KumoMTA's proxy-server)",
        description="Run a KumoProxy policy (--proxy-config: proxy_init starts "
        "proxy.start_proxy_listener and proxy.start_http_listener), or KumoMTA's legacy "
        "command line (--listen, --no-splice, --timeout-seconds). See docs/proxy-server.md.",
    )
    serve.add_argument("--proxy-config", metavar="FILE", help="the Lua policy to load")
    serve.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="IP:PORT",
        help="[legacy] an address to listen on (repeatable)",
    )
    serve.add_argument(
        "--no-splice",
        action="store_true",
        help="[legacy] use_splice = false (no effect in kumocore)",
    )
    serve.add_argument(
        "--timeout-seconds",
        type=int,
        metavar="N",
        help="[legacy] each handshake step's timeout (default 60)",
    )
    serve.set_defaults(handler=_serve)
    check = commands.add_parser(
        "validate",
        help="load a proxy policy and stop before listening",
        description="Load FILE as `kumocore proxy serve` would (proxy_init, listener "
        "options), print a summary and exit 0, or print the error serve would stop with "
        "and exit 1.",
    )
    check.add_argument(
        "--proxy-config", metavar="FILE", required=True, help="the Lua policy to check"
    )
    check.set_defaults(handler=_validate)
