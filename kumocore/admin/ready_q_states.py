"""``GET /api/admin/ready-q-states/v1``: which ready queues are held back, and why.

KumoMTA's ``ReadyQueueStateResponse``: ``{"states_by_ready_queue": {name: {state:
{"context", "since"}}}}`` with the states of :mod:`kumocore.queue.path_states`
(``connection_limited``, ``connection_rate_throttled``); a queue in neither state is not
listed. ``queues`` (repeated, or comma-separated as kcli sends it) limits the answer to
those ready queues. KumoMTA's code skips the named queues instead of keeping only them;
kumocore does what KumoMTA's documentation says.

With ``serve --workers N`` the workers' answers are merged (:func:`merge_states`): a
queue's state is listed once, since the earliest time any worker entered it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.admin.api_support import refuse_unknown_query
from kumocore.admin.peers import PeerAnswer

if TYPE_CHECKING:
    from kumocore.queue.manager import QueueManager

__all__ = ["READY_Q_STATES_PATH", "merge_states", "ready_q_states"]

READY_Q_STATES_PATH = "/api/admin/ready-q-states/v1"


def _wanted(request: web.Request) -> set[str]:
    return {name for value in request.query.getall("queues", [])
            for name in value.split(",") if name}  # fmt: skip


def ready_q_states(manager: QueueManager, wanted: set[str]) -> dict[str, Any]:
    """This worker's answer for the ready queues ``wanted`` (empty: all of them)."""
    states: dict[str, Any] = {}
    for path in list(manager.paths.values()):
        name = path.key.name
        if wanted and name not in wanted:
            continue
        entry = path.throttles.states.to_json()
        if entry:
            states[name] = entry
    return {"states_by_ready_queue": states}


async def handle_ready_q_states(manager: QueueManager, request: web.Request) -> web.Response:
    refuse_unknown_query(request, ("queues",))
    return web.json_response(ready_q_states(manager, _wanted(request)))


def merge_states(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    bodies = [local.body] if local.status == 200 and isinstance(local.body, bytes) else []
    bodies += [answer.body for answer in answers if answer.status == 200]
    if not bodies:
        return local  # no worker could answer (a refused query): its error, as it is
    merged: dict[str, dict[str, dict[str, str]]] = {}
    for body in bodies:
        for name, states in json.loads(body)["states_by_ready_queue"].items():
            into = merged.setdefault(name, {})
            for state, value in states.items():
                # RFC 3339 times of one format order as text: keep the earliest entry.
                if state not in into or value["since"] < into[state]["since"]:
                    into[state] = value
    return web.json_response({"states_by_ready_queue": merged})
