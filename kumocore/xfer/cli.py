"""``kumocore xfer`` and ``kumocore xfer-cancel``: kcli's commands of the same names.

``xfer --target URL --reason R`` with ``--domain``, ``--routing-domain``, ``--campaign``,
``--tenant``, ``--queue`` (repeatable) or ``--everything`` (one of them is required, as in
kcli, so that no typo moves every queue) posts ``/api/admin/xfer/v1``; ``xfer-cancel
QUEUE_NAME --reason R`` posts ``/api/admin/xfer/cancel/v1``. Both print the JSON answer
(``{"moved": N}``: kumocore answers once the messages are moved, where kcli notes that
KumoMTA works in the background).
"""

from __future__ import annotations

import argparse
from typing import Any

from kumocore.admin.cli_client import (
    SELECTORS,
    AdminClientError,
    client_options,
    guarded,
    print_json,
    run,
    selection_options,
)

__all__ = ["add_xfer_subcommands"]


def _refuse(text: str) -> AdminClientError:
    return AdminClientError(0, {"error": f"xfer: {text}"})


def _xfer(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {n: getattr(args, n) for n in SELECTORS if getattr(args, n)}
    if args.queue and body:
        raise _refuse("--queue cannot be combined with --domain, --routing-domain, "
                      "--campaign or --tenant")  # fmt: skip
    if args.queue:
        body["queue_names"] = args.queue
    if body and args.everything:
        raise _refuse("--everything cannot be combined with a selector")
    if not body and not args.everything:
        raise _refuse("no domain, routing_domain, campaign, tenant or queue was given; "
                      "use --everything to move every queue")  # fmt: skip
    body.update(target=args.target, reason=args.reason)
    return print_json(run(args, "POST", "/api/admin/xfer/v1", body))


def _xfer_cancel(args: argparse.Namespace) -> int:
    body = {"queue_name": args.queue_name, "reason": args.reason}
    return print_json(run(args, "POST", "/api/admin/xfer/cancel/v1", body))


def add_xfer_subcommands(subparsers: Any) -> None:
    """Add ``xfer`` and ``xfer-cancel`` to the admin CLI's ``subparsers``."""
    xfer = subparsers.add_parser(
        "xfer", help="move waiting messages of matching queues to another node",
        description="Move the messages waiting in the matching scheduled queues to the "
        "node whose HTTP listener is TARGET (kcli xfer). Example: kumocore xfer "
        "--domain example.com --target http://10.0.0.1:8000 --reason 'scale in'")  # fmt: skip
    xfer.add_argument("--target", required=True, help="the target node's HTTP listener URL")
    xfer.add_argument("--reason", required=True, help="logged in AdminRebind records")
    selection_options(xfer)
    xfer.add_argument("--queue", action="append", default=[],
                      help="an exact scheduled-queue name (repeatable)")  # fmt: skip
    client_options(xfer)
    xfer.set_defaults(handler=guarded(_xfer))

    cancel = subparsers.add_parser(
        "xfer-cancel", help="put a transfer queue's messages back in their queues",
        description="Take the messages waiting in the transfer queue QUEUE_NAME "
        "('<target>.xfer.kumomta.internal') back to the queues they came from "
        "(kcli xfer-cancel).")  # fmt: skip
    cancel.add_argument("queue_name", help="the transfer queue's name")
    cancel.add_argument("--reason", required=True, help="logged in AdminRebind records")
    client_options(cancel)
    cancel.set_defaults(handler=guarded(_xfer_cancel))
