"""Operator suspensions and bounces shared through the automation store.

When automation runs on a shared store (``'redis-throttles'``), an admin suspend, bounce
or ready-queue suspension made on one node is also written there as an ``AdminSuspend`` /
``AdminBounce`` / ``AdminSuspendReadyQ`` action; every node sharing the store applies it
as its own admin rule (same id), and a cancel (resume) on any node removes it from every
node. KumoMTA makes operators call each node; on a node without a shared store nothing
changes (the rule is the node's own).
"""

from __future__ import annotations

import time
import uuid
from typing import Protocol

from kumocore.queue.admin import QueueRule
from kumocore.queue.ready_suspend import ReadyQueueSuspension, suspension_order
from kumocore.tsa.store import ActionStore, ActiveAction

ADMIN_KINDS = ("AdminSuspend", "AdminBounce", "AdminSuspendReadyQ")
#: An operator's ready-queue suspension (``/api/admin/suspend-ready-q/v1``); ``site`` holds
#: the ready queue's name.
READY_Q_KIND = "AdminSuspendReadyQ"
_FIELDS = ("campaign", "tenant", "domain", "routing_domain")


class SharedEngine(Protocol):
    """What sharing needs of the automation engine (:class:`~kumocore.tsa.engine.TsaEngine`)."""

    @property
    def store(self) -> ActionStore: ...

    async def sync(self) -> None: ...

    async def cancel(self, action_id: str) -> bool: ...


def _shared(engine: SharedEngine | None) -> SharedEngine | None:
    if engine is None or not str(engine.store.label).startswith("redis"):
        return None
    return engine


async def share_rule(
    engine: SharedEngine | None, hostname: str, kind: str, rule: QueueRule
) -> bool:
    """Write an admin rule for every node; False when there is no shared store."""
    engine = _shared(engine)
    if engine is None:
        return False
    value = {name: getattr(rule, name) for name in _FIELDS}
    value.update(queue_names=list(rule.queue_names), suppress_logging=rule.suppress_logging)
    action = ActiveAction(
        id=rule.id, kind=kind, rule=f"admin API on {hostname}", reason=rule.reason,
        site="", site_name="", source="", domain=rule.domain or "", since=time.time(),
        expires=rule.expires, tenant=rule.tenant, campaign=rule.campaign, value=value,
    )  # fmt: skip
    await engine.store.put(action)
    if kind == "AdminSuspend":
        await _drop_replaced_suspensions(engine, rule)
    await engine.sync()
    return True


async def _drop_replaced_suspensions(engine: SharedEngine, rule: QueueRule) -> None:
    """Of the shared operator suspensions with ``rule``'s selectors only the latest (by
    its time-ordered id) stays in the store, as each node keeps only that one
    (:meth:`kumocore.queue.admin.AdminRules.add_suspension`): else a cancel of a replaced
    id would still find it in the store and a node starting later would apply it."""
    same = [rule_of(a) for a in (await engine.store.active()).values()
            if a.kind == "AdminSuspend"]  # fmt: skip
    same = [r for r in same if r.selectors == rule.selectors and _operator_id(r.id)]
    latest = max(same, key=lambda r: suspension_order(r.id), default=None)
    for replaced in same:
        if latest is not None and replaced.id != latest.id:
            await engine.store.cancel(replaced.id)


def _operator_id(rule_id: str) -> bool:
    """An operator's rule (admin API): a UUID id; automation's ids are ``<site>-<hash>``."""
    try:
        uuid.UUID(rule_id)
    except ValueError:
        return False
    return True


async def share_ready_suspension(
    engine: SharedEngine | None, hostname: str, suspension: ReadyQueueSuspension
) -> bool:
    """Write a ready-queue suspension for every node; False when there is no shared store.

    Of the suspensions of one ready queue only the latest (by its time-ordered id) stays
    in the store: the others were replaced, and a node that starts later must not apply
    one of them. Each writer reads the store after its write, so of two nodes writing at
    once the one that reads last sees both and removes the earlier one, whichever it is."""
    engine = _shared(engine)
    if engine is None:
        return False
    action = ActiveAction(
        id=suspension.id, kind=READY_Q_KIND, rule=f"admin API on {hostname}",
        reason=suspension.reason, site=suspension.name, site_name="", source="", domain="",
        since=time.time(), expires=suspension.expires,
    )  # fmt: skip
    await engine.store.put(action)
    same_queue = [a for a in (await engine.store.active()).values()
                  if a.kind == READY_Q_KIND and a.site == suspension.name]  # fmt: skip
    latest = max(same_queue, key=lambda a: suspension_order(a.id), default=None)
    for replaced in same_queue:
        if latest is not None and replaced.id != latest.id:
            await engine.store.cancel(replaced.id)
    await engine.sync()
    return True


async def unshare_ready_suspension(engine: SharedEngine | None, suspension_id: str) -> bool:
    """Remove a ready-queue suspension from every node, with the older suspensions of the
    same ready queue it replaced; True if the store had it.

    Two nodes asked at once to suspend one queue both write a suspension before either
    sees the other's: the later one (by its time-ordered id) holds and is the one listed.
    Cancelling it must end the hold, so the earlier one goes too; else a node that never
    saw the later one would apply it at its next sync."""
    engine = _shared(engine)
    if engine is None:
        return False
    actions = await engine.store.active()
    target = actions.get(suspension_id)
    if target is None or target.kind != READY_Q_KIND:
        return bool(await engine.cancel(suspension_id))
    found = await engine.store.cancel(suspension_id)
    for action in actions.values():
        if (
            action.kind == READY_Q_KIND
            and action.site == target.site
            and action.id != suspension_id
            and suspension_order(action.id) < suspension_order(target.id)
        ):
            await engine.store.cancel(action.id)
    await engine.sync()  # once, when all are gone: no sync in between re-applies one
    return bool(found)


def ready_suspension_of(action: ActiveAction) -> ReadyQueueSuspension:
    return ReadyQueueSuspension(name=action.site, reason=action.reason,
                                expires=action.expires, id=action.id)  # fmt: skip


async def unshare_rule(engine: SharedEngine | None, rule_id: str) -> bool:
    """Remove a shared admin rule from every node; True if the store had it."""
    engine = _shared(engine)
    if engine is None:
        return False
    return bool(await engine.cancel(rule_id))


def rule_of(action: ActiveAction) -> QueueRule:
    value = action.value if isinstance(action.value, dict) else {}
    return QueueRule(
        reason=action.reason, expires=action.expires,
        duration=max(0.0, action.expires - action.since),
        queue_names=tuple(value.get("queue_names") or ()),
        suppress_logging=bool(value.get("suppress_logging", False)),
        id=action.id, campaign=value.get("campaign"), tenant=value.get("tenant"),
        domain=value.get("domain"), routing_domain=value.get("routing_domain"),
    )  # fmt: skip
