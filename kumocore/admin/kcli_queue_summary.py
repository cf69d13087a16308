"""``kumocore queue-summary``: kcli's ``queue-summary`` table, for operators who type it.

kumocore's own ``queue summary`` prints the queue summary API's table. This one prints
what kcli prints, with kcli's options:

- **Ready queues.** Each row has SITE, SOURCE and PROTO, then D (delivered) and T
  (transient failures) since start, C (open connections) and Q (ready messages). Its last
  column says why the queue is held: an operator's ready-queue suspension
  (``🛑suspend: <reason>``) and its states (``connection_limited: <context> @ <since>``).
- **Scheduled queues.** Each row has SCHEDULED QUEUE and COUNT (waiting messages), then
  the admin rule that holds it (``🗑️ bounce: <reason>`` or ``🛑suspend: <reason>``, for
  the rules that name its campaign, tenant or domain, as kcli matches them).

Rows are in natural name order, or by volume with ``--by-volume`` (D + T + C + Q for a
ready queue, the count for a scheduled one), largest first. ``--limit N`` keeps the first
N of each section.

``--domain D`` keeps the ready queues of D's site, and the scheduled queues named D or
whose site is D's site. kcli resolves the MX records itself. kumocore asks the node:
``resolve-egress-path`` gives D's site, and the queue summary gives each scheduled
queue's site, where the node has found it.

The numbers come from the queue summary API (:mod:`kumocore.admin.summary`); kcli reads
the same counts from the metrics.
"""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kumocore.admin.kcli_table import count, natural_key, tabulate
from kumocore.admin.ready_q_text import chrono_display
from kumocore.mail.queue_name import parse_queue_name

__all__ = ["add_queue_summary_subcommand", "format_queue_summary", "ready_parts"]

Fetch = Callable[[str], Any]


def ready_parts(name: str) -> tuple[str, str, str]:
    """``(site, source, protocol)`` of ready queue ``name`` (``source->site@protocol``),
    split as kcli splits it: a protocol it does not know stays part of the site."""
    source, arrow, rest = name.partition("->")
    if not arrow:
        source, rest = "", name
    protocol = ""
    if rest.endswith("@smtp_client"):
        protocol = "smtp_client"
    else:
        for marker in ("@lua:", "@maildir:"):
            at = rest.rfind(marker)
            if at >= 0:
                protocol = rest[at + 1:]
                break
    site = rest[: len(rest) - len(protocol) - 1] if protocol else rest
    return site, source, protocol


def _ready_status(name: str, suspended: Mapping[str, str],
                  states: Mapping[str, Mapping[str, Any]]) -> str:  # fmt: skip
    status = [f"🛑suspend: {suspended[name]}"] if name in suspended else []
    for key, state in states.get(name, {}).items():
        status.append(f"{key}: {state.get('context', '')} @ {chrono_display(state['since'])}")
    return ", ".join(status)


def _rule_matches(queue: str, rule: Mapping[str, Any]) -> bool:
    # kcli's match: campaign, tenant and domain (a rule's other selectors are not asked).
    parts = parse_queue_name(queue)
    return all(rule.get(field) is None or rule.get(field) == getattr(parts, field)
               for field in ("campaign", "tenant", "domain"))  # fmt: skip


def _scheduled_status(queue: str, bounces: Sequence[Mapping[str, Any]],
                      suspensions: Sequence[Mapping[str, Any]]) -> str:  # fmt: skip
    for prefix, rules in (("🗑️ bounce", bounces), ("🛑suspend", suspensions)):
        for rule in rules:
            if _rule_matches(queue, rule):
                return f"{prefix}: {rule.get('reason', '')}"
    return ""


def format_queue_summary(
    summary: Mapping[str, Any],
    *,
    by_volume: bool = False,
    limit: int | None = None,
    domain: tuple[str, str] | None = None,
    suspended: Mapping[str, str] | None = None,
    states: Mapping[str, Mapping[str, Any]] | None = None,
    bounces: Sequence[Mapping[str, Any]] = (),
    suspensions: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The two tables; ``domain`` is ``(domain, its site)`` for ``--domain``."""
    ready = list(summary.get("ready", []))
    scheduled = list(summary.get("scheduled", []))
    if domain is not None:
        name, site = domain
        ready = [e for e in ready if ready_parts(e["name"])[0] == site]
        scheduled = [e for e in scheduled if e["name"] == name or e.get("site") == site]

    def ready_volume(e: Mapping[str, Any]) -> int:
        return int(e.get("delivered", 0) + e.get("transient", 0) + e["connections"]
                   + e["count"])  # fmt: skip

    if by_volume:
        ready.sort(key=lambda e: (-ready_volume(e), natural_key(e["name"])))
        scheduled.sort(key=lambda e: (-e["count"], natural_key(e["name"])))
    else:
        ready.sort(key=lambda e: natural_key(e["name"]))
        scheduled.sort(key=lambda e: natural_key(e["name"]))
    if limit is not None:
        ready, scheduled = ready[:limit], scheduled[:limit]
    ready_rows = [
        [*ready_parts(e["name"]), count(e.get("delivered", 0)), count(e.get("transient", 0)),
         count(e["connections"]), count(e["count"]),
         _ready_status(e["name"], suspended or {}, states or {})]
        for e in ready
    ]  # fmt: skip
    scheduled_rows = [[e["name"], count(e["count"]),
                       _scheduled_status(e["name"], bounces, suspensions)]
                      for e in scheduled]  # fmt: skip
    lines = tabulate(["SITE", "SOURCE", "PROTO", "D", "T", "C", "Q", ""], ready_rows,
                     right={"D", "T", "C", "Q"})  # fmt: skip
    lines.append("")
    lines += tabulate(["SCHEDULED QUEUE", "COUNT", ""], scheduled_rows, right={"COUNT"})
    return "\n".join(lines)


def _domain_site(fetch: Fetch, domain: str) -> str:
    """The site the node's routing gives ``domain`` (its ready queue name's site part)."""
    query = urllib.parse.urlencode({"domain": domain})
    answer = fetch(f"/api/admin/resolve-egress-path/v1?{query}")
    return ready_parts(answer["queue_name"])[0]


def _run(args: argparse.Namespace) -> int:
    from kumocore.admin.cli_client import check_limit, run

    check_limit("queue-summary", args.limit)

    def fetch(path: str) -> Any:
        return run(args, "GET", path)

    domain = None if args.domain is None else (args.domain, _domain_site(fetch, args.domain))
    suspended = {s["name"]: s.get("reason", "") for s in fetch("/api/admin/suspend-ready-q/v1")}
    states = fetch("/api/admin/ready-q-states/v1").get("states_by_ready_queue", {})
    # The API lists the busiest 1,000 queues of each kind; a domain's may be further down.
    summary = "/api/admin/queue-summary/v1" + ("" if domain is None else "?limit=10000")
    print(format_queue_summary(
        fetch(summary), by_volume=args.by_volume, limit=args.limit,
        domain=domain, suspended=suspended, states=states,
        bounces=fetch("/api/admin/bounce/v1"), suspensions=fetch("/api/admin/suspend/v1")))
    return 0


def add_queue_summary_subcommand(subparsers: Any) -> None:
    """Add ``queue-summary`` (kcli's name, options and table) to the admin CLI."""
    from kumocore.admin.cli_client import client_options, guarded

    parser = subparsers.add_parser(
        "queue-summary", help="kcli's queue summary: ready and scheduled queues",
        description="The ready queues (SITE, SOURCE, PROTO; D delivered and T transiently "
        "failed since start, C connections, Q ready messages; why a queue is held) and the "
        "scheduled queues (waiting messages; the admin rule holding them), as kcli prints "
        "them. For people, not scripts. Example: kumocore queue-summary --by-volume")
    parser.add_argument("--limit", type=int, help="at most this many rows in each table")
    parser.add_argument("--by-volume", action="store_true",
                        help="order by volume, largest first, instead of by name")
    parser.add_argument("--domain", help="only the queues of this domain's site")
    client_options(parser)
    parser.set_defaults(handler=guarded(_run))
