"""Holding ready queues for operators: add or cancel a ready-queue suspension in this
worker and share it with every node of the automation store.

Used by the admin endpoint (:mod:`kumocore.admin.ready_q`) and by the policy functions
``kumo.api.admin.suspend_ready_q.*`` (:mod:`kumocore.admin.ready_q_policy`). It knows
nothing of HTTP, so the policy side can use it without importing the admin routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kumocore.tsa.admin_share import (
    share_ready_suspension,
    unshare_ready_suspension,
    unshare_rule,
)

if TYPE_CHECKING:
    from kumocore.node.services import Services
    from kumocore.policy.policy_host import PolicyHost
    from kumocore.queue.egress import EgressShared
    from kumocore.queue.path import EgressPath
    from kumocore.queue.ready_suspend import ReadyQueueSuspension

__all__ = ["add_ready_suspension", "cancel_ready_suspension", "hold_paths"]


def hold_paths(paths: Iterable[EgressPath], shared: EgressShared) -> None:
    """Give every open path the hold it now has (a new, replaced or cancelled suspension);
    a path whose hold was lifted wakes and delivers its ready queue."""
    for path in list(paths):
        path.suspend_until(shared.held_until(path.key.name))


async def add_ready_suspension(runtime: PolicyHost, services: Services,
                               suspension: ReadyQueueSuspension) -> None:  # fmt: skip
    """Hold ``suspension.name`` in this worker (replacing an earlier suspension of it), and
    on every node sharing the automation store."""
    holds = services.queues.egress.ready_holds
    replaced = holds.get(suspension.name)
    if not holds.add(suspension):
        return  # a later suspension of this queue, made at the same moment, holds it
    hold_paths(services.queues.paths.values(), services.queues.egress)
    if replaced is not None and replaced.id != suspension.id:
        await unshare_rule(runtime.tsa, replaced.id)  # else other nodes would keep it
    await share_ready_suspension(runtime.tsa, runtime.hostname, suspension)


async def cancel_ready_suspension(runtime: PolicyHost, services: Services,
                                  suspension_id: str) -> bool:  # fmt: skip
    """End a suspension here and on every node sharing the store; False if none had it
    (or a later suspension of its queue replaced it: as in KumoMTA, that one is gone)."""
    holds = services.queues.egress.ready_holds
    if holds.replaced(suspension_id):
        await unshare_rule(runtime.tsa, suspension_id)  # a copy some store may still have
        return False
    here = holds.cancel(suspension_id) is not None
    if here:
        hold_paths(services.queues.paths.values(), services.queues.egress)
    shared = await unshare_ready_suspension(runtime.tsa, suspension_id)
    return here or shared
