"""``kumocore tsa list`` / ``kumocore tsa cancel ID``: automation actions of a running node.

A client of ``/api/admin/tsa/v1`` like the other admin commands. With a Redis store the
list is the fleet's and a cancel applies on every node sharing it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from kumocore.admin.cli_client import DEFAULT_ENDPOINT, AdminClientError, request

PATH = "/api/admin/tsa/v1"


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_actions(body: dict[str, Any]) -> str:
    if not body.get("configured"):
        return "traffic shaping automation is not configured on this node"
    actions = body.get("actions", [])
    lines = [f"store: {body.get('store')}; {len(actions)} active action(s)"]
    for a in actions:
        what = a["kind"] + (f" {a['name']}={a['value']}" if a.get("name") else "")
        if a.get("tenant"):
            what += f" tenant={a['tenant']}" + (f" campaign={a['campaign']}"
                                                 if a.get("campaign") else "")
        pending = "" if a.get("applied") else " [not applied yet]"
        lines.append(
            f"{a['id']}\n  {what} on {a['site']} (domain {a['domain']})\n"
            f"  rule {a['rule']}: {a['reason']}\n"
            f"  since {_when(a['since'])} until {_when(a['expires'])} UTC "
            f"({a['remaining_seconds']:.0f}s left){pending}")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    from kumocore.node.service_cli import run_service
    from kumocore.tsa.daemon import serve

    return run_service("tsa serve", serve(args.policy, listen=args.listen,
                                          trusted=args.trusted_host,
                                          state_file=args.state_file,
                                          tune_gc=True))  # fmt: skip


def _validate(args: argparse.Namespace) -> int:
    from kumocore.node.service_cli import run_service
    from kumocore.tsa.daemon import validate

    return run_service("tsa validate", validate(args.policy), show=True)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.tsa_command == "cancel":
            body = request(args.endpoint, "DELETE", PATH, {"id": args.id}, timeout=args.timeout)
            print(json.dumps(body))
            return 0
        body = request(args.endpoint, "GET", PATH, timeout=args.timeout)
    except AdminClientError as exc:
        print(json.dumps(exc.body), file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2) if args.json else format_actions(body))
    return 0


def add_tsa_subcommand(subparsers: Any) -> None:
    tsa = subparsers.add_parser("tsa", help="traffic shaping automation actions of a node")
    commands = tsa.add_subparsers(dest="tsa_command", required=True)
    listing = commands.add_parser("list", help="active actions: rule, path, since, until")
    listing.add_argument("--json", action="store_true", help="the API's JSON as is")
    cancel = commands.add_parser("cancel", help="end an action now (on every node)")
    cancel.add_argument("id", help="the action id (from `kumocore tsa list`)")
    serve = commands.add_parser(
        "serve", help="run automation as a service (KumoMTA's tsa-daemon role)",
        description="Load POLICY (KumoMTA's tsa-daemon policy: tsa_init and "
        "tsa_load_shaping_data; or one calling shaping:setup_with_automation) and serve "
        "/publish_log_v1, /get_config_v1/shaping.toml, /subscribe_event_v1 and "
        "/api/admin/tsa/v1 on its listeners (tsa.start_http_listener), else on --listen "
        "to --trusted-host peers only.")
    serve.add_argument("--policy", required=True, help="the Lua or Python policy")
    serve.add_argument("--listen", help="address when the policy starts no listener "
                       "(default 127.0.0.1:8008)")
    serve.add_argument("--trusted-host", action="append", metavar="CIDR",
                       help="a peer allowed to call --listen (repeatable; default loopback)")
    serve.add_argument("--state-file", metavar="PATH",
                       help="with the 'local' store, unless the policy calls "
                       "tsa.configure_tsa_db_path: where actions and match counts are kept "
                       "across restarts (default var/tsa-state.json; '' keeps them in "
                       "memory only)")
    serve.set_defaults(handler=_serve)
    check = commands.add_parser(
        "validate", help="load a `tsa serve` policy and stop before listening",
        description="Load POLICY as `kumocore tsa serve` would (shaping data, tsa_init, "
        "listeners, state path), print a summary and exit 0, or print the error serve "
        "would stop with and exit 1.")
    check.add_argument("--policy", required=True, help="the Lua or Python policy")
    check.set_defaults(handler=_validate)
    for parser in (listing, cancel):
        parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT,
                            help="base URL of the node's HTTP listener (default %(default)s)")
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
        parser.set_defaults(handler=_run)
