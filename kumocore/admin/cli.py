"""``kumocore`` admin commands: a thin client of the admin HTTP API, like KumoMTA's kcli.

Plain ``urllib`` on purpose: a one-shot command needs no event loop, and the admin API
is the only interface, so the CLI can never do something the API cannot. Output is JSON,
except ``queue summary`` which prints a table (``--json`` for the raw response). An HTTP
error prints the server's JSON error to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from kumocore.admin.cli_client import (
    DEFAULT_ENDPOINT,
    SELECTORS,
    AdminClientError,
    canceller,
    client_options,
    guarded,
    lister,
    print_json,
    request,
    run,
    selection_options,
)
from kumocore.admin.summary import format_summary

__all__ = ["DEFAULT_ENDPOINT", "AdminClientError", "add_admin_subcommands", "request"]


# ---------------------------------------------------------------------- commands
def _rule_body(args: argparse.Namespace, parser_name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": args.reason, **_selection(args, parser_name, args.queue)}
    if args.duration is not None:
        body["duration"] = args.duration
    if args.expires is not None:
        body["expires"] = args.expires
    if getattr(args, "suppress_logging", False):
        body["suppress_logging"] = True
    return body


def _summary(args: argparse.Namespace) -> int:
    result = run(args, "GET", "/api/admin/queue-summary/v1")
    if args.json:
        return print_json(result)
    print(format_summary(result))
    return 0


def _queue_list(args: argparse.Namespace) -> int:
    query = {"queue_name": args.queue_name}
    if args.limit is not None:
        query["limit"] = str(args.limit)
    result = run(args, "GET", f"/api/admin/inspect-sched-q/v1?{urllib.parse.urlencode(query)}")
    if args.json:
        return print_json(result)
    from kumocore.admin.queue_list import format_queue_list

    print(format_queue_list(result))
    return 0


def _selection(args: argparse.Namespace, what: str,
               queue_names: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The selector fields of a rule or rebind request; an empty selector matches every
    queue, so it needs ``--everything`` (as kcli)."""
    body: dict[str, Any] = {n: getattr(args, n) for n in SELECTORS if getattr(args, n) is not None}
    if queue_names:
        body["queue_names"] = queue_names
    if not body and not args.everything:
        queue = " or --queue" if queue_names is not None else ""
        raise AdminClientError(0, {"error": f"{what}: give --domain, --tenant, --campaign, "
                                   f"--routing-domain{queue}, or --everything to match "
                                   "every queue"})  # fmt: skip
    return body


def _flush(args: argparse.Namespace) -> int:
    body = {**_selection(args, "queue flush"), "reason": args.reason, "always_flush": True,
            "suppress_logging": True}
    return print_json(run(args, "POST", "/api/admin/rebind/v1", body))


def _rebind(args: argparse.Namespace) -> int:
    data: dict[str, str] = json.loads(args.data) if args.data else {}
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep:
            raise AdminClientError(0, {"error": f"rebind: --set {pair!r} is not KEY=VALUE"})
        data[key] = value
    body = {**_selection(args, "rebind"), "reason": args.reason, "data": data,
            "always_flush": args.always_flush, "suppress_logging": args.suppress_logging,
            "trigger_rebind_event": args.trigger_rebind_event}
    return print_json(run(args, "POST", "/api/admin/rebind/v1", body))


def _bounce(args: argparse.Namespace) -> int:
    return print_json(run(args, "POST", "/api/admin/bounce/v1", _rule_body(args, "bounce")))


def _suspend(args: argparse.Namespace) -> int:
    return print_json(run(args, "POST", "/api/admin/suspend/v1", _rule_body(args, "suspend")))


def _inspect(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"id": args.id, "want_body": str(args.want_body).lower()})
    result = run(args, "GET", f"/api/admin/inspect-message/v1?{query}")
    data = result.get("message", {}).pop("data", None) if not args.json else None
    print_json(result)
    if data is not None:
        # The message as it would go on the wire, not one JSON string of "\r\n"s.
        print("--- message data ---")
        sys.stdout.write(data.replace("\r\n", "\n"))
        if not data.endswith("\n"):
            print()
    return 0


def _top(args: argparse.Namespace) -> int:
    from kumocore.admin.top import run_top

    return run_top(lambda path: run(args, "GET", path), args.endpoint,
                   interval=args.interval, once=args.once)  # fmt: skip


# ---------------------------------------------------------------------- parser
def _rule_options(parser: argparse.ArgumentParser, *, bounce: bool) -> None:
    parser.add_argument("--reason", required=True, help="why (logged and listed)")
    selection_options(parser)
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        help="an exact scheduled-queue name (repeatable; overrides the above)",
    )
    parser.add_argument("--duration", help="how long the rule stays active (default 5m)")
    parser.add_argument("--expires", help="RFC 3339 end time instead of --duration")
    if bounce:
        parser.add_argument(
            "--suppress-logging",
            action="store_true",
            help="bounce without writing AdminBounce log records",
        )
    client_options(parser)


def add_admin_subcommands(subparsers: Any) -> None:
    """Add ``queue summary``, ``bounce*``, ``suspend*`` and ``inspect`` to ``kumocore``."""
    queue = subparsers.add_parser("queue", help="queue views over the admin API")
    queue_commands = queue.add_subparsers(dest="queue_command", required=True)
    summary = queue_commands.add_parser("summary", help="scheduled and ready queues")
    summary.add_argument("--json", action="store_true", help="print the raw JSON")
    client_options(summary)
    summary.set_defaults(handler=guarded(_summary))
    listing = queue_commands.add_parser(
        "list", help="the messages of one scheduled queue (like mailq)",
        description="List the messages waiting in one scheduled queue: id, age, attempts, "
        "next attempt, sender and recipient. Example: kumocore queue list gmail.com")
    listing.add_argument("queue_name", help="the scheduled queue (e.g. tenant@gmail.com)")
    listing.add_argument("--limit", type=int, help="at most this many messages (per worker)")
    listing.add_argument("--json", action="store_true", help="print the raw JSON")
    client_options(listing)
    listing.set_defaults(handler=guarded(_queue_list))
    flush = queue_commands.add_parser(
        "flush", help="retry waiting messages now (like postqueue -f)",
        description="Make every waiting message of the matching queues due now. Example: "
        "kumocore queue flush --domain gmail.com")
    selection_options(flush)
    flush.add_argument("--reason", default="flushed by the operator", help="logged reason")
    client_options(flush)
    flush.set_defaults(handler=guarded(_flush))

    rebind = subparsers.add_parser(
        "rebind", help="set meta on waiting messages and move them to other queues",
        description="KumoMTA's rebind: merge --set/--data meta into each waiting message "
        "of the matching queues (or, with --trigger-rebind-event, let the policy's "
        "rebind_message event decide); one whose queue changes moves there and is due now "
        "(AdminRebind record). Example: kumocore rebind --domain example.com --set "
        "queue=smarthost.example --reason 'route via smarthost'")
    selection_options(rebind)
    rebind.add_argument("--reason", required=True, help="logged in AdminRebind records")
    rebind.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a meta value to set (repeatable)")
    rebind.add_argument("--data", help="meta values as a JSON object of strings")
    rebind.add_argument("--always-flush", action="store_true",
                        help="make matching messages due now even if their queue is the same")
    rebind.add_argument("--suppress-logging", action="store_true",
                        help="write no AdminRebind records")
    rebind.add_argument("--trigger-rebind-event", action="store_true",
                        help="pass each message and the data to the policy's rebind_message "
                        "event, which decides what changes (data is then not set as meta)")
    client_options(rebind)
    rebind.set_defaults(handler=guarded(_rebind))

    for kind, create in (("bounce", _bounce), ("suspend", _suspend)):
        path = f"/api/admin/{kind}/v1"
        parser = subparsers.add_parser(kind, help=f"add an admin {kind} rule")
        _rule_options(parser, bounce=kind == "bounce")
        parser.set_defaults(handler=guarded(create))
        listing = subparsers.add_parser(f"{kind}-list", help=f"list active {kind} rules")
        client_options(listing)
        listing.set_defaults(handler=guarded(lister(path)))
        cancel = subparsers.add_parser(f"{kind}-cancel", help=f"cancel a {kind} rule")
        cancel.add_argument("id", help="the rule id")
        client_options(cancel)
        cancel.set_defaults(handler=guarded(canceller(path)))

    from kumocore.admin.cli_ops import add_ops_subcommands

    add_ops_subcommands(subparsers)  # kcli's names
    from kumocore.xfer.cli import add_xfer_subcommands

    add_xfer_subcommands(subparsers)  # kcli's xfer, xfer-cancel

    inspect = subparsers.add_parser("inspect", help="show a queued message")
    inspect.add_argument("id", help="the message (spool) id")
    inspect.add_argument("--want-body", action="store_true",
                         help="print the message data after the envelope")  # fmt: skip
    inspect.add_argument("--json", action="store_true",
                         help="print the API's JSON as is (data as one string)")  # fmt: skip
    client_options(inspect)
    inspect.set_defaults(handler=guarded(_inspect))

    from kumocore.admin.top import add_top_arguments

    top = subparsers.add_parser(
        "top", help="live view of queues, rates and outcomes (like kcli top)",
        description="A live terminal view of a running node, refreshed every --interval "
        "seconds: messages per second received, delivered, failed; ready queues with "
        "connections against their limit; the largest scheduled queues. Ctrl-C ends it.")
    add_top_arguments(top)
    client_options(top)
    top.set_defaults(handler=guarded(_top))

    from kumocore.admin.provider_summary import add_provider_summary_subcommand

    add_provider_summary_subcommand(subparsers)  # kcli's provider-summary
    from kumocore.admin.kcli_queue_summary import add_queue_summary_subcommand

    add_queue_summary_subcommand(subparsers)  # kcli's queue-summary
    from kumocore.admin.kcli_inspect import add_kcli_inspect_subcommands

    add_kcli_inspect_subcommands(subparsers)  # kcli's inspect-message, inspect-sched-q
    from kumocore.admin.spool_compact import add_spool_compact_subcommand

    add_spool_compact_subcommand(subparsers)  # kcli's spool-compact

    from kumocore.admin.ready_q_cli import add_ready_q_subcommands

    add_ready_q_subcommands(subparsers)  # suspend-ready-q*, bump-config-epoch

    from kumocore.trace.cli import add_trace_subcommands

    add_trace_subcommands(subparsers)  # trace-smtp-server, trace-smtp-client
