"""A worker of ``serve --workers N`` that starts (again) takes on the node's admin rules.

Three kinds of operator rule live in each worker's memory, the same ones under the same
ids on every worker because they are made for the whole node (:mod:`kumocore.admin.fanout`):
scheduled-queue bounces (``/api/admin/bounce/v1``), scheduled-queue suspensions
(``/api/admin/suspend/v1``) and ready-queue suspensions (``/api/admin/suspend-ready-q/v1``).
A worker the supervisor restarts after a crash would start with none of them: it would
deliver mail an operator suspended or asked to bounce. So, once its queues exist and before
it recovers its spool (:meth:`kumocore.node.server.Server.start`, ``before_recovery``), it
asks the other workers for their rules and holds each active one it lacks, with the same
id: the messages it recovers and those it receives later meet the rules as on the others.

Ready-queue suspensions are read from their KumoMTA listing, which has every field. The
scheduled-queue listings do not (:mod:`kumocore.admin.peer_rules`), so those are read from
the private-socket route that does. An adopted bounce rule starts with no bounce counts:
what the others bounced stays counted by them, and the node's listing sums the workers.
It bounces the matching messages this worker then recovers from its spool, as a rule made
while the worker ran would have (a message whose bounce the crash interrupted before it
left the spool is bounced again, as any outcome cut short by a crash is redone).

At the node's first start every worker asks while the others are starting too: nobody
answers, or nobody has any, and nothing changes.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from kumocore.admin.peer_rules import PEER_RULES_PATH, rule_of_entry
from kumocore.admin.ready_holds import hold_paths
from kumocore.queue.ready_suspend import ReadyQueueSuspension

if TYPE_CHECKING:
    from kumocore.admin.peers import NodePeers
    from kumocore.node.services import Services

__all__ = ["adopt_node_rules", "suspension_of_entry"]

log = structlog.get_logger("kumocore.admin")


def suspension_of_entry(entry: Any) -> ReadyQueueSuspension | None:
    """A ready-queue suspension from one entry of its ``GET`` listing; None if it is not one."""
    if not isinstance(entry, dict):
        return None
    fields = [entry.get(key) for key in ("id", "name", "reason", "expires")]
    if not all(isinstance(value, str) and value for value in fields):
        return None
    suspension_id, name, reason, expires = fields
    try:
        # The listing writes nanoseconds; the end is kept to the microsecond.
        when = datetime.datetime.fromisoformat(str(expires))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return ReadyQueueSuspension(name=str(name), reason=str(reason),
                                expires=when.timestamp(), id=str(suspension_id))  # fmt: skip


def _hold_ready_suspension(services: Services, entry: Any) -> bool:
    suspension = suspension_of_entry(entry)
    holds = services.queues.egress.ready_holds
    if suspension is None or suspension.id in holds or not suspension.active:
        return False
    # The newer suspension of a queue wins, by id, as it does between running workers.
    return holds.add(suspension)


def _hold_bounce(services: Services, entry: Any) -> bool:
    rule, manager = rule_of_entry(entry), services.queues
    if rule is None or not rule.active or rule.id in manager.admin.bounces:
        return False
    manager.apply_bounce_rule(rule)  # this worker's own messages only (none yet at start)
    return True


def _hold_suspension(services: Services, entry: Any) -> bool:
    rule, manager = rule_of_entry(entry), services.queues
    if rule is None or not rule.active or rule.id in manager.admin.suspensions:
        return False
    manager.add_suspension(rule)
    return True


def _wake_ready_paths(services: Services) -> None:
    hold_paths(services.queues.paths.values(), services.queues.egress)


@dataclass(frozen=True)
class RuleKind:
    """One kind of node-wide rule: where the others list it and how this worker holds it."""

    name: str
    path: str
    hold: Callable[[Services, Any], bool]  # True when the entry was taken on here
    after: Callable[[Services], None] | None = None  # once, if any was taken on


KINDS = (
    RuleKind("ready_q_suspensions", "/api/admin/suspend-ready-q/v1",
             _hold_ready_suspension, _wake_ready_paths),
    RuleKind("bounces", f"{PEER_RULES_PATH}/bounce", _hold_bounce),
    RuleKind("suspensions", f"{PEER_RULES_PATH}/suspend", _hold_suspension),
)  # fmt: skip


async def _entries(peers: NodePeers, path: str) -> list[Any]:
    """Every entry the other workers list at ``path`` (those not answering say nothing)."""
    found: list[Any] = []
    for answer in await peers.ask_others("GET", path, b"", {}):
        if answer.status != 200:
            continue  # not started yet, or restarting itself
        try:
            entries = orjson.loads(answer.body)
        except ValueError:
            continue
        found.extend(entries if isinstance(entries, list) else [])
    return found


async def adopt_node_rules(peers: NodePeers, services: Services) -> dict[str, int]:
    """Hold the active rules the other workers hold and this one does not; how many of
    each kind."""
    listed = await asyncio.gather(*(_entries(peers, kind.path) for kind in KINDS))
    adopted: dict[str, int] = {}
    for kind, entries in zip(KINDS, listed, strict=True):
        # Every worker lists the same rules: the first copy of an id is taken, the rest skipped.
        count = sum(1 for entry in entries if kind.hold(services, entry))
        if count and kind.after is not None:
            kind.after(services)
        adopted[kind.name] = count
    if any(adopted.values()):
        log.info("admin rules taken on from the other workers", **adopted)
    return adopted
