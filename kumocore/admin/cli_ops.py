"""``kumocore set-log-filter``, ``abort-ready-q-conn`` and ``resolve-egress-path``: kcli's
commands of the same names, over the admin API (:mod:`kumocore.admin.node_ops`,
:mod:`kumocore.admin.resolve_path`).

The first two endpoints answer plain text (KumoMTA's), so they are read here as text; an
error answer is still the API's JSON error on stderr and exit status 1, as for every
admin command (:mod:`kumocore.admin.cli`). ``resolve-egress-path`` prints kcli's text
block (:func:`kumocore.admin.ready_q_text.render_resolution`), or with ``--config`` the
path configuration as TOML, ``--constraints`` the ceilings, ``--json`` the whole answer
(one of the three at most).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from typing import Any

from kumocore.admin.cli_client import client_options, guarded, request_raw, run

__all__ = ["add_ops_subcommands"]


def _post_text(args: argparse.Namespace, path: str, body: dict[str, Any]) -> str:
    """POST ``body``; the answer's text (an error answer raises, as every admin call)."""
    raw = request_raw(args.endpoint, "POST", path, body, timeout=args.timeout)
    return raw.decode("utf-8", "replace")


def _set_log_filter(args: argparse.Namespace) -> int:
    text = _post_text(args, "/api/admin/set_diagnostic_log_filter/v1", {"filter": args.filter})
    print(text or "OK")  # as kcli: the server's text, or OK for an empty answer
    return 0


def _abort_ready_q_conn(args: argparse.Namespace) -> int:
    body = {"queue_name": args.queue_name, "session_id": args.session_id}
    print(_post_text(args, "/api/admin/abort-ready-q-conn/v1", body) or "OK")
    return 0


def _resolve_egress_path(args: argparse.Namespace) -> int:
    from kumocore.admin.ready_q_text import render_resolution
    from kumocore.config.constraints import render_ceilings
    from kumocore.config.toml_text import toml_encode_pretty_compact

    query = {"domain": args.domain}
    if args.source is not None:
        query["source"] = args.source
    answer = run(args, "GET", f"/api/admin/resolve-egress-path/v1?{urllib.parse.urlencode(query)}")
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True))
    elif args.config:
        sys.stdout.write(toml_encode_pretty_compact(answer["path_config"]))
    elif args.constraints:
        sys.stdout.write(render_ceilings(answer["constraints"]))
    else:
        sys.stdout.write(render_resolution(answer))
    return 0


def add_ops_subcommands(subparsers: Any) -> None:
    """Add the three commands to the admin CLI's ``subparsers``."""
    log_filter = subparsers.add_parser(
        "set-log-filter", help="change the diagnostic log filter of a running node",
        description="Set the diagnostic log filter in every worker, as "
        "kumo.set_diagnostic_log_filter does. Example: kumocore set-log-filter kumod=debug")
    log_filter.add_argument("filter", help="e.g. kumod=debug, or a bare level: info")
    client_options(log_filter)
    log_filter.set_defaults(handler=guarded(_set_log_filter))

    abort = subparsers.add_parser(
        "abort-ready-q-conn", help="abort one open connection of a ready queue",
        description="Cancel the delivery connection SESSION_ID of ready queue QUEUE_NAME; "
        "a message it was sending goes back to the ready queue and out on a new "
        "connection. Session ids are logged at debug level ('ready queue connection "
        "started') — see set-log-filter.")
    abort.add_argument("queue_name",
                       help="the ready queue, e.g. 'unspecified->mx.example@smtp_client'")
    abort.add_argument("session_id", help="the connection's session id (a UUID)")
    client_options(abort)
    abort.set_defaults(handler=guarded(_abort_ready_q_conn))

    resolve = subparsers.add_parser(
        "resolve-egress-path", help="which ready queue, egress path config and throughput "
        "ceilings a domain gets",
        description="Ask the running node's policy, read-only, what routing would ask for "
        "mail to DOMAIN over SOURCE: queue config, MX site, ready queue name, egress "
        "path config and the throughput ceilings it implies. Example: kumocore "
        "resolve-egress-path gmail.com ip-1 --constraints")
    resolve.add_argument("domain", help="the destination domain")
    resolve.add_argument("source", nargs="?", help="the egress source (default: unspecified)")
    only = resolve.add_mutually_exclusive_group()
    only.add_argument("--config", action="store_true",
                      help="print only the egress path config, as TOML")  # fmt: skip
    only.add_argument("--constraints", action="store_true",
                      help="print only the throughput ceilings")  # fmt: skip
    only.add_argument("--json", action="store_true", help="print the API's JSON answer")
    client_options(resolve)
    resolve.set_defaults(handler=guarded(_resolve_egress_path))
