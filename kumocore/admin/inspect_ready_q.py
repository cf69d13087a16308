"""``GET /api/admin/inspect-ready-q/v1``: one ready queue (egress path) in detail.

KumoMTA's ``InspectReadyQV1Response`` with the fields kumocore has: ``queue_name``,
``egress_source``, ``protocol``, ``now``, ``path_config`` (the configuration in use),
``constraints`` (its throughput ceilings, :mod:`kumocore.config.constraints`), ``mx`` (the
MX set of an SMTP path), ``dispatchers`` (its open connections, each with KumoMTA's
``DispatcherSummary`` fields: ``session_id``, ``started_at``, ``age``, ``phase``,
``detail``, ``time_in_current_phase``, ``messages_delivered``, ``messages_transfailed``,
``messages_failed``, ``delivered_this_connection`` and ``overall_rate_per_sec``),
``state`` (``connection_count``, ``ready_count``, ``suspended``, ``watchdog_threshold`` —
the effective ``dispatcher_progress_watchdog_timeout``, :mod:`kumocore.queue.watchdog` —
and the states of :mod:`kumocore.queue.path_states`) and, with ``include_scheduled_queues=true``,
``scheduled_queue_names`` (the scheduled queues of the messages now in the ready queue).
An unknown queue is a 404.

A kumocore dispatcher is one connection, so ``delivered_this_connection`` is its
``messages_delivered`` (KumoMTA, whose dispatchers may reconnect, answers 0 there).
Durations are written as KumoMTA writes them (humantime: ``1m 4s 120ms 7us 5ns``).

``egress_pool`` is, as in KumoMTA, the pool of the scheduled queue whose message opened
the ready queue (routing records it on the path; ``unspecified`` for a path no routed
message opened), not necessarily the pool of every message now in it.

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
from kumocore.config.constraints import path_constraints

if TYPE_CHECKING:
    from kumocore.queue.dispatchers import Dispatcher
    from kumocore.queue.manager import QueueManager
    from kumocore.queue.path import EgressPath

__all__ = ["inspect_ready_q", "merge_inspect_ready_q"]


def _path_named(manager: QueueManager, name: str) -> EgressPath | None:
    return next((p for p in list(manager.paths.values()) if p.key.name == name), None)


def _nanos(seconds: float) -> int:
    return max(int(seconds * 1e9), 0)


def _dispatcher(d: Dispatcher, now: float, monotonic: float) -> dict[str, Any]:
    """KumoMTA's ``DispatcherSummary`` of one connection."""
    from kumocore.config.duration import humantime
    from kumocore.logs.record import rfc3339_ns

    age = max(now - d.started_at, 0.0)
    total = d.delivered + d.transfailed + d.failed
    return {
        "session_id": str(d.session_id),
        "started_at": rfc3339_ns(d.started_at),
        "age": humantime(_nanos(age)),
        "phase": d.phase,
        "detail": d.detail,
        "time_in_current_phase": humantime(_nanos(monotonic - d.active_at)),
        "messages_delivered": d.delivered,
        "messages_transfailed": d.transfailed,
        "messages_failed": d.failed,
        "delivered_this_connection": d.delivered,  # one dispatcher, one connection
        "overall_rate_per_sec": total / age if age > 0 else 0.0,
    }


#: Connections described between two yields to the event loop (about 20 ms' work).
_DISPATCHERS_PER_STEP = 1_000


async def _dispatchers(path: EgressPath, now: float) -> list[dict[str, Any]]:
    """Every connection of ``path``. A path may hold thousands (each costs about 20 us to
    describe): they are described a step at a time, from a copy, as the names below."""
    monotonic = time.monotonic()
    dispatchers = list(path.dispatchers)
    described: list[dict[str, Any]] = []
    for start in range(0, len(dispatchers), _DISPATCHERS_PER_STEP):
        if start:
            await asyncio.sleep(0)
        described += [_dispatcher(d, now, monotonic)
                      for d in dispatchers[start:start + _DISPATCHERS_PER_STEP]]  # fmt: skip
    return described


def _state(manager: QueueManager, path: EgressPath) -> dict[str, Any]:
    from kumocore.config.duration import humantime
    from kumocore.queue.watchdog import threshold

    suspension = manager.egress.ready_holds.get(path.key.name)
    return {
        "connection_count": path.connections,
        "ready_count": len(path),
        "suspended": suspension.to_json() if suspension is not None else None,
        "watchdog_threshold": humantime(_nanos(threshold(path))),
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
        names.update(m.queue_name() for m in messages[start : start + _NAMES_PER_STEP])
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
        "egress_pool": path.pool or "unspecified",
        "egress_source": path.key.source,
        "protocol": path.key.protocol,
        "now": rfc3339_ns(now),
        "path_config": path.config.to_dict(),
        "constraints": path_constraints(path.config),
        "mx": mx_resolution(path.mx) if path.mx is not None else None,
        "dispatchers": await _dispatchers(path, now),
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
                {*merged["scheduled_queue_names"], *view["scheduled_queue_names"]}
            )
        for state, value in view["state"].items():  # held back on any worker
            if state not in merged["state"] or merged["state"][state] is None:
                merged["state"][state] = value
    return web.json_response(merged)
