"""``kumocore suspend-ready-q``, ``suspend-ready-q-list``, ``suspend-ready-q-cancel``,
``inspect-ready-q`` and ``bump-config-epoch``: clients of :mod:`kumocore.admin.ready_q`,
named as kcli's commands (kcli has no ``bump-config-epoch``; its name is the endpoint's).

Like the other admin commands they print the API's JSON answer, except ``inspect-ready-q``,
which prints kcli's text (:mod:`kumocore.admin.ready_q_text`) unless given ``--json``; an
error answer goes to stderr as JSON and the command exits 1.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from typing import Any

from kumocore.admin.cli_client import canceller, client_options, guarded, lister, print_json, run

# Spelled out, not imported from kumocore.admin.ready_q: the CLI does not load aiohttp.
SUSPEND_READY_Q_PATH = "/api/admin/suspend-ready-q/v1"
BUMP_PATH = "/api/admin/bump-config-epoch"
INSPECT_READY_Q_PATH = "/api/admin/inspect-ready-q/v1"

__all__ = ["add_ready_q_subcommands"]


def _suspend_ready_q(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "reason": args.reason}
    if args.duration is not None:
        body["duration"] = args.duration
    if args.expires is not None:
        body["expires"] = args.expires
    return print_json(run(args, "POST", SUSPEND_READY_Q_PATH, body))


def _inspect_ready_q(args: argparse.Namespace) -> int:
    if args.json and (args.connections or args.config or args.sched_q):
        # As kcli: the JSON always carries everything, so the section flags make no sense.
        print("error: --json cannot be used with --connections, --config or --sched-q",
              file=sys.stderr)  # fmt: skip
        return 2
    query = urllib.parse.urlencode({
        "queue_name": args.queue_name,
        "include_scheduled_queues": str(args.sched_q or args.json).lower()})
    view = run(args, "GET", f"{INSPECT_READY_Q_PATH}?{query}")
    if args.json:
        return print_json(view)
    from kumocore.admin.ready_q_text import render_inspect

    sys.stdout.write(render_inspect(view, connections=args.connections, config=args.config,
                                    sched_q=args.sched_q))  # fmt: skip
    return 0


def _bump_config_epoch(args: argparse.Namespace) -> int:
    run(args, "POST", BUMP_PATH, {})
    return print_json({"bumped": True})  # the API answers 200 with an empty body


def add_ready_q_subcommands(subparsers: Any) -> None:
    """Add this module's commands to ``kumocore``'s command line."""
    suspend = subparsers.add_parser(
        "suspend-ready-q", help="hold one ready queue (egress path): no delivery until "
        "cancelled or over",
        description="Suspend delivery on one ready queue, named source->site@protocol as "
        "'kumocore queue summary' lists it. Suspending the same queue again replaces the "
        "earlier suspension. Example: kumocore suspend-ready-q --name "
        "'unspecified->mx.example.com@smtp_client' --reason 'block at the receiver'")
    suspend.add_argument("--name", required=True, help="the ready queue's name")
    suspend.add_argument("--reason", required=True, help="why (listed with the suspension)")
    suspend.add_argument("--duration", help="how long it holds (default 5m)")
    suspend.add_argument("--expires", help="RFC 3339 end time instead of --duration")
    client_options(suspend)
    suspend.set_defaults(handler=guarded(_suspend_ready_q))
    listing = subparsers.add_parser("suspend-ready-q-list",
                                    help="list active ready-queue suspensions")  # fmt: skip
    client_options(listing)
    listing.set_defaults(handler=guarded(lister(SUSPEND_READY_Q_PATH)))
    cancel = subparsers.add_parser("suspend-ready-q-cancel",
                                   help="cancel a ready-queue suspension")  # fmt: skip
    cancel.add_argument("id", help="the suspension's id")
    client_options(cancel)
    cancel.set_defaults(handler=guarded(canceller(SUSPEND_READY_Q_PATH)))
    inspect = subparsers.add_parser(
        "inspect-ready-q", help="show one ready queue: state, counts, MX, ceilings, "
        "connections",
        description="Show one ready queue (egress path) as GET inspect-ready-q/v1 answers, "
        "as kcli prints it: its source, protocol, MX set, ready count, suspension and "
        "throttling states, throughput ceilings and connection count. Example: kumocore "
        "inspect-ready-q 'unspecified->mx.example.com@smtp_client' --connections")
    inspect.add_argument("queue_name", help="the ready queue's name")
    inspect.add_argument("--connections", action="store_true",
                         help="list open connections: phase, time in phase, message "
                         "counts, age and rate")  # fmt: skip
    inspect.add_argument("--config", action="store_true",
                         help="show the path configuration (TOML)")  # fmt: skip
    inspect.add_argument("--sched-q", action="store_true",
                         help="list the scheduled queues of its messages")  # fmt: skip
    inspect.add_argument("--json", action="store_true",
                         help="the API's whole answer as JSON (not with the flags above)")
    client_options(inspect)
    inspect.set_defaults(handler=guarded(_inspect_ready_q))
    bump = subparsers.add_parser(
        "bump-config-epoch", help="bump the configuration epoch on every worker",
        description="What kumo.bump_config_epoch() does in a policy: configurations made "
        "with refresh_strategy 'Epoch' are asked for again and the Lua policy is evaluated "
        "again, on every worker of the node.")
    client_options(bump)
    bump.set_defaults(handler=guarded(_bump_config_epoch))
