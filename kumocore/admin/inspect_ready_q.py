"""``GET /api/admin/inspect-ready-q/v1``: one ready queue (egress path) in detail.

KumoMTA's ``InspectReadyQV1Response`` with the fields kumocore has: ``queue_name``,
``egress_source``, ``protocol``, ``now``, ``path_config`` (the configuration in use),
``mx`` (the MX set of an SMTP path), ``dispatchers`` (its open connections: ``session_id``,
``started_at``, ``age``), ``state`` (``connection_count``, ``ready_count``, ``suspended``
and the states of :mod:`kumocore.queue.path_states`) and, with
``include_scheduled_queues=true``, ``scheduled_queue_names`` (the scheduled queues of the
messages now in the ready queue). Left out, because kumocore has nothing to fill them
with: ``egress_pool`` (a path is one source, which several pools may share),
``constraints``, ``state.watchdog_threshold`` and the dispatchers' phase and per-connection
counters. An unknown queue is a 404.

With ``serve --workers N`` each worker has its own path under the name; the answers are
merged by :func:`merge_inspect_ready_q` (counts summed, connections and scheduled queues
listed together).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.admin.peers import PeerAnswer

if TYPE_CHECKING:
    from kumocore.queue.manager import QueueManager
    from kumocore.queue.path import EgressPath

__all__ = ["inspect_ready_q", "merge_inspect_ready_q"]


def _path_named(manager: QueueManager, name: str) -> EgressPath | None:
    return next((p for p in list(manager.paths.values()) if p.key.name == name), None)


def _dispatchers(path: EgressPath, now: float) -> list[dict[str, Any]]:
    from kumocore.logs.record import rfc3339_ns

    return [{"session_id": str(d.session_id), "started_at": rfc3339_ns(d.started_at),
             "age": f"{max(now - d.started_at, 0.0):.0f}s"}
            for d in path.dispatchers]  # fmt: skip


def _state(manager: QueueManager, path: EgressPath) -> dict[str, Any]:
    suspension = manager.egress.ready_holds.get(path.key.name)
    return {
        "connection_count": path.connections,
        "ready_count": len(path),
        "suspended": suspension.to_json() if suspension is not None else None,
        **path.throttles.states.to_json(),
    }


#: Messages named between two yields to the event loop (a few milliseconds' work).
_NAMES_PER_STEP = 5_000


async def _scheduled_queue_names(path: EgressPath) -> list[str]:
    """The scheduled queues of the messages in the ready queue. It may hold millions (a
    held queue keeps what falls due): they are named a step at a time, so the worker
    goes on serving meanwhile, from a copy, since the queue changes in between."""
    messages = [*path.messages, *path.overflow]
    names: set[str] = set()
    for start in range(0, len(messages), _NAMES_PER_STEP):
        names.update(m.queue_name() for m in messages[start:start + _NAMES_PER_STEP])
        await asyncio.sleep(0)
    return sorted(names)


async def inspect_ready_q(manager: QueueManager, name: str,
                          include_scheduled_queues: bool) -> dict[str, Any] | None:  # fmt: skip
    """This worker's view of ready queue ``name``; None if it has no such queue."""
    from kumocore.admin.resolve_path import mx_resolution
    from kumocore.logs.record import rfc3339_ns

    path = _path_named(manager, name)
    if path is None:
        return None
    now = time.time()
    result: dict[str, Any] = {
        "queue_name": name,
        "egress_source": path.key.source,
        "protocol": path.key.protocol,
        "now": rfc3339_ns(now),
        "path_config": path.config.to_dict(),
        "mx": mx_resolution(path.mx) if path.mx is not None else None,
        "dispatchers": _dispatchers(path, now),
        "state": _state(manager, path),
    }
    if include_scheduled_queues:
        result["scheduled_queue_names"] = await _scheduled_queue_names(path)
    return result


def merge_inspect_ready_q(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """The workers that have the queue, as one: the first one's facts, counts summed."""
    bodies = [local.body] if local.status == 200 and isinstance(local.body, bytes) else []
    bodies += [answer.body for answer in answers if answer.status == 200]
    if not bodies:
        return local  # no worker has it: this worker's 404 (or error) stands
    views = [json.loads(body) for body in bodies]
    merged = views[0]
    for view in views[1:]:
        merged["dispatchers"] += view["dispatchers"]
        for count in ("connection_count", "ready_count"):
            merged["state"][count] += view["state"][count]
        if "scheduled_queue_names" in merged:
            merged["scheduled_queue_names"] = sorted(
                {*merged["scheduled_queue_names"], *view["scheduled_queue_names"]})
        for state, value in view["state"].items():  # held back on any worker
            if state not in merged["state"] or merged["state"][state] is None:
                merged["state"][state] = value
    return web.json_response(merged)
