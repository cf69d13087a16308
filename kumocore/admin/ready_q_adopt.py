"""A worker of ``serve --workers N`` that starts (again) takes on the node's ready-queue
suspensions.

Suspensions live in each worker's memory (:mod:`kumocore.queue.ready_suspend`); every
worker holds the same ones, under the same ids, because they are made for the whole node
(:mod:`kumocore.admin.fanout`, :mod:`kumocore.admin.ready_q_policy`). A worker the
supervisor restarts after a crash would start with none and deliver the ready queues the
other workers still hold. So, once its private socket serves, it asks the other workers
for their suspensions and holds each one it does not have, with its id, reason and end.

At the node's first start every worker asks while the others are starting too: nobody
answers, or nobody has any, and nothing changes.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from kumocore.admin.ready_holds import hold_paths
from kumocore.queue.ready_suspend import ReadyQueueSuspension

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

__all__ = ["adopt_ready_suspensions", "suspension_of_entry"]

log = structlog.get_logger("kumocore.admin")

_PATH = "/api/admin/suspend-ready-q/v1"


def suspension_of_entry(entry: Any) -> ReadyQueueSuspension | None:
    """A suspension from one entry of the ``GET`` listing; None if it is not one."""
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


async def adopt_ready_suspensions(runtime: Runtime) -> int:
    """Hold the active suspensions the other workers hold and this one does not; how many."""
    peers, services = runtime.node, runtime.services
    if peers is None or services is None:
        return 0
    answers = await peers.ask_others("GET", _PATH, b"", {})
    holds = services.queues.egress.ready_holds
    adopted = 0
    for answer in answers:
        if answer.status != 200:
            continue  # not started yet, or restarting itself
        try:
            entries = orjson.loads(answer.body)
        except ValueError:
            continue
        for entry in entries if isinstance(entries, list) else []:
            suspension = suspension_of_entry(entry)
            if suspension is None or suspension.id in holds or not suspension.active:
                continue
            current = holds.get(suspension.name)
            if current is not None and current.expires >= suspension.expires:
                continue  # a later one of this queue already holds here
            holds.add(suspension)
            adopted += 1
    if adopted:
        hold_paths(services.queues.paths.values(), services.queues.egress)
        log.info("ready-queue suspensions taken on from the other workers", count=adopted)
    return adopted
