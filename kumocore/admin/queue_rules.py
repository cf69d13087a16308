"""Operators' scheduled-queue rules: add or cancel an admin bounce or suspension in this
worker and share it with every node of the automation store.

Used by the admin endpoints ``/api/admin/bounce/v1`` and ``/api/admin/suspend/v1``
(:mod:`kumocore.admin.routes`) and by the policy functions ``kumo.api.admin.bounce.*`` and
``kumo.api.admin.suspend.*`` (:mod:`kumocore.admin.rules_policy`). It knows nothing of
HTTP, as :mod:`kumocore.admin.ready_holds` does not for ready-queue suspensions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kumocore.tsa.admin_share import share_rule, unshare_rule

if TYPE_CHECKING:
    from kumocore.node.services import Services
    from kumocore.policy.policy_host import PolicyHost
    from kumocore.queue.admin import QueueRule

__all__ = ["MAX_RULES", "MAX_RULE_NAMES", "add_bounce", "add_suspension", "cancel_bounce",
           "cancel_suspension", "room_for", "suspension_entry"]  # fmt: skip

#: Active rules of one kind (bounces, suspensions) the admin API adds at most. A message
#: reads only the few its queue's name parts select (:mod:`kumocore.queue.admin_index`);
#: the bound is on memory and on listing them (each request that adds one counts them).
MAX_RULES = 10_000
#: ``queue_names`` the active rules of one kind hold at most: a 2 MiB request names
#: 95,000 queues, 12 MB of memory for as long as the rule lasts (up to years).
MAX_RULE_NAMES = 1_000_000


def room_for(active: list[QueueRule], rule: QueueRule, kind: str) -> str | None:
    """Why ``rule`` may not join the ``active`` rules of its kind, or None."""
    if len(active) >= MAX_RULES:
        return f"too many active {kind} rules ({MAX_RULES}): cancel some or wait for them to end"
    names = sum(len(other.queue_names) for other in active) + len(rule.queue_names)
    if names > MAX_RULE_NAMES:
        return (f"the active {kind} rules would name {names} queues, more than "
                f"{MAX_RULE_NAMES}: cancel some, or match the queues by domain, tenant or "
                "campaign")
    return None


def suspension_entry(rule: QueueRule) -> dict[str, Any]:
    """KumoMTA's ``SuspendV1ListEntry``: the bounce entry without the bounce counts."""
    entry = rule.to_json()
    return {key: entry[key] for key in ("id", "campaign", "tenant", "domain", "reason", "duration")}


async def add_bounce(runtime: PolicyHost, services: Services, rule: QueueRule) -> None:
    """Bounce what ``rule`` matches here (queued now, and queued while it lasts), and on
    every node sharing the automation store."""
    from kumocore.node.stepwise import run_stepwise

    await run_stepwise(services.queues.bounce_rule_steps(rule))  # other clients go on
    await share_rule(runtime.tsa, runtime.hostname, "AdminBounce", rule)


async def cancel_bounce(runtime: PolicyHost, services: Services, rule_id: str) -> bool:
    """End bounce rule ``rule_id`` here and in the shared store; False if neither had it
    (an expired rule included)."""
    services.queues.admin.list_bounces()  # prunes expired rules first
    shared = await unshare_rule(runtime.tsa, rule_id)
    return services.queues.cancel_bounce(rule_id) or shared


async def add_suspension(runtime: PolicyHost, services: Services, rule: QueueRule) -> None:
    """Hold the scheduled queues ``rule`` matches here and on every node sharing the store."""
    services.queues.add_suspension(rule)
    await share_rule(runtime.tsa, runtime.hostname, "AdminSuspend", rule)


async def cancel_suspension(runtime: PolicyHost, services: Services, rule_id: str) -> bool:
    """End suspension ``rule_id`` here and in the shared store; False if neither had it."""
    services.queues.admin.list_suspensions()  # prunes expired ones first
    shared = await unshare_rule(runtime.tsa, rule_id)
    return services.queues.cancel_suspension(rule_id) or shared
