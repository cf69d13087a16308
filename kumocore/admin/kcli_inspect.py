"""``kumocore inspect-message`` and ``kumocore inspect-sched-q``: kcli's commands under
kcli's names and options, for operators and scripts that call them so.

kumocore's own ``inspect`` and ``queue list`` show the same answers for people (the body
as lines, a ``mailq``-like table). These print the API's JSON answer whole, as kcli does.
``inspect-sched-q`` asks for 5 messages unless ``--limit N`` or ``--no-limit`` says
otherwise, as kcli does.
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

__all__ = ["add_kcli_inspect_subcommands"]


def _inspect_message(args: argparse.Namespace) -> int:
    from kumocore.admin.cli_client import print_json, run

    query = urllib.parse.urlencode({"id": args.id, "want_body": str(args.want_body).lower()})
    return print_json(run(args, "GET", f"/api/admin/inspect-message/v1?{query}"))


def _inspect_sched_q(args: argparse.Namespace) -> int:
    from kumocore.admin.cli_client import check_limit, print_json, run

    fields = {"queue_name": args.queue_name, "want_body": str(args.want_body).lower()}
    if not args.no_limit:
        check_limit("inspect-sched-q", args.limit)
        fields["limit"] = str(args.limit)
    query = urllib.parse.urlencode(fields)
    return print_json(run(args, "GET", f"/api/admin/inspect-sched-q/v1?{query}"))


def add_kcli_inspect_subcommands(subparsers: Any) -> None:
    """Add ``inspect-message`` and ``inspect-sched-q`` to the admin CLI."""
    from kumocore.admin.cli_client import client_options, guarded

    message = subparsers.add_parser(
        "inspect-message", help="a queued message as JSON (kcli's inspect-message)",
        description="Print the inspect-message answer for message ID as JSON, as kcli "
        "does (kumocore inspect prints the body as lines).")
    message.add_argument("id", help="the message (spool) id")
    message.add_argument("--want-body", action="store_true", help="include the message data")
    client_options(message)
    message.set_defaults(handler=guarded(_inspect_message))

    queue = subparsers.add_parser(
        "inspect-sched-q", help="a scheduled queue and some of its messages as JSON "
        "(kcli's inspect-sched-q)",
        description="Print the inspect-sched-q answer for QUEUE_NAME as JSON, as kcli does: "
        "5 messages unless --limit or --no-limit (kumocore queue list prints a table).")
    queue.add_argument("queue_name", help="the scheduled queue (e.g. tenant@gmail.com)")
    queue.add_argument("--want-body", action="store_true",
                       help="include each message's data (costly for many messages)")
    limits = queue.add_mutually_exclusive_group()
    limits.add_argument("--limit", type=int, default=5, help="how many messages (default 5)")
    limits.add_argument("--no-limit", action="store_true", help="every message of the queue")
    client_options(queue)
    queue.set_defaults(handler=guarded(_inspect_sched_q))
