"""``kumocore trace-smtp-server`` and ``kumocore trace-smtp-client``: kcli's commands.

They connect to the admin WebSocket (:mod:`kumocore.trace.ws`), send the filter built from
the options and print each event as kcli does (:mod:`kumocore.trace.text`) until Ctrl-C,
or until the first session closes with ``--only-one``. A refused connection (an untrusted
host: 401) prints the server's error to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from kumocore.admin.cli_client import client_options
from kumocore.trace.text import TraceText
from kumocore.trace.ws import CLIENT_PATH, SERVER_PATH

#: Client options that are lists of allowed values, and their request field.
_CLIENT_LISTS = (
    ("mx_host", "mx-host"), ("domain", "domain"), ("routing_domain", "routing-domain"),
    ("campaign", "campaign"), ("tenant", "tenant"), ("egress_pool", "egress-pool"),
    ("egress_source", "egress-source"), ("mail_from", "mail-from"), ("rcpt_to", "rcpt-to"),
    ("ready_queue", "ready-queue"),
)  # fmt: skip


def server_request(args: argparse.Namespace) -> dict[str, Any]:
    """KumoMTA's ``TraceSmtpV1Request`` from the options."""
    request: dict[str, Any] = {"source_addr": args.source or None}
    if args.terse:
        request["terse"] = True
    return request


def client_request(args: argparse.Namespace) -> dict[str, Any]:
    """KumoMTA's ``TraceSmtpClientV1Request`` from the options."""
    request: dict[str, Any] = {name: getattr(args, name) for name, _ in _CLIENT_LISTS}
    request["source_addr"] = args.source or None
    request["mx_addr"] = args.mx_addr or None
    if args.terse:
        request["terse"] = True
    return request


def _color(choice: str) -> bool:
    return sys.stdout.isatty() if choice == "tty" else choice == "yes"


async def follow(endpoint: str, path: str, request: dict[str, Any], text: TraceText) -> int:
    """Print the trace until the server closes it (or ``--only-one`` is satisfied)."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(endpoint.rstrip("/") + path, heartbeat=30)
        except aiohttp.WSServerHandshakeError as exc:
            print(json.dumps({"error": f"{exc.status} {exc.message}"}), file=sys.stderr)
            return 1
        except (aiohttp.ClientError, OSError) as exc:
            print(json.dumps({"error": f"cannot reach {endpoint}: {exc}"}), file=sys.stderr)
            return 1
        async with ws:
            await ws.send_str(json.dumps(request))
            while True:
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                for line in text.lines(json.loads(message.data)):
                    print(line, flush=True)
                if text.done:
                    return 0
            if ws.close_code not in (None, 1000):  # e.g. 1008: the filter was refused
                print(json.dumps({"error": f"trace closed by the server ({ws.close_code}): "
                                  f"{message.extra or ''}"}), file=sys.stderr)  # fmt: skip
                return 1
    return 0


def _run(args: argparse.Namespace, client: bool) -> int:
    request = client_request(args) if client else server_request(args)
    text = TraceText(client=client, color=_color(args.color), only_new=args.only_new,
                     only_one=args.only_one, terse=args.terse)  # fmt: skip
    try:
        return asyncio.run(follow(args.endpoint, CLIENT_PATH if client else SERVER_PATH,
                                  request, text))  # fmt: skip
    except KeyboardInterrupt:
        return 0


def _common(parser: argparse.ArgumentParser, terse: str) -> None:
    parser.add_argument("--source", action="append", default=[], metavar="CIDR",
                        help="trace only connections from this address or network "
                        "(repeatable; default: every connection)")  # fmt: skip
    parser.add_argument(
        "--color",
        choices=("tty", "yes", "no"),
        default="tty",
        help="colorize the output (default: when stdout is a terminal)",
    )
    parser.add_argument(
        "--only-new",
        action="store_true",
        help="ignore sessions that were open before the trace started",
    )
    parser.add_argument(
        "--only-one",
        action="store_true",
        help="trace the first session seen, and stop when it closes",
    )
    parser.add_argument("--terse", action="store_true", help=terse)
    client_options(parser)


def add_trace_subcommands(subparsers: Any) -> None:
    """Add ``trace-smtp-server`` and ``trace-smtp-client`` (kcli's names and options)."""
    server = subparsers.add_parser(
        "trace-smtp-server", help="live trace of the SMTP listener's sessions",
        description="Print the SMTP conversations of the listener as they happen. On a "
        "busy node, narrow it with --source. Ctrl-C ends it.")  # fmt: skip
    _common(server, "show a multi-line read (the message data) by its first line and size")
    server.set_defaults(handler=lambda args: _run(args, client=False))
    client = subparsers.add_parser(
        "trace-smtp-client", help="live trace of the delivery client's sessions",
        description="Print the SMTP conversations of outbound deliveries as they happen. "
        "Every filter only excludes a session once the property is known (a message's "
        "domain or sender after it was taken). Ctrl-C ends it.")  # fmt: skip
    _common(client, "show a multi-line write (the message data) by its first line and size")
    client.add_argument(
        "--mx-addr",
        action="append",
        default=[],
        metavar="CIDR",
        help="trace only connections to this MX address or network",
    )
    for name, flag in _CLIENT_LISTS:
        client.add_argument(
            f"--{flag}",
            dest=name,
            action="append",
            default=[],
            help=f"trace only sessions whose {name} is this (repeatable)",
        )
    client.set_defaults(handler=lambda args: _run(args, client=True))
