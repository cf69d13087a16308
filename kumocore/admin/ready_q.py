"""Admin endpoints over ready queues and the configuration epoch (KumoMTA's shapes).

* ``POST/GET/DELETE /api/admin/suspend-ready-q/v1``: hold one ready queue (egress path)
  by its name, list the holds, cancel one by id (:mod:`kumocore.queue.ready_suspend`).
* ``POST /api/admin/bump-config-epoch``: bump the configuration epoch, as
  ``kumo.bump_config_epoch()`` does in a policy (hook ``kumo_register_config_epoch_bump``).
* ``GET /api/admin/ready-q-states/v1``: :mod:`kumocore.admin.ready_q_states`.
* ``GET /api/admin/inspect-ready-q/v1``: :mod:`kumocore.admin.inspect_ready_q`.

With ``serve --workers N`` each is answered for the whole node by
:mod:`kumocore.admin.fanout`: every worker holds the same suspension under one id, and
every worker bumps its epoch.

Differences from KumoMTA, on purpose: ``DELETE`` answers ``{"id": ...}`` (KumoMTA: the
text "removed <id>") and its 404 is a JSON error, like every other kumocore admin error;
a bump with no epoch provider installed is refused (501) rather than doing nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from kumocore.admin.api_support import (
    ADMIN_PREFIX,
    ApiError,
    json_errors,
    json_object,
    manager_of,
    refuse_unknown_query,
    rule_id_of,
    services_of,
)
from kumocore.admin.peers import peer_rule_id
from kumocore.admin.ready_holds import add_ready_suspension, cancel_ready_suspension
from kumocore.queue.ready_suspend import parse_ready_suspension

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

__all__ = ["BUMP_PATH", "MAX_READY_HOLDS", "SUSPEND_READY_Q_PATH", "ReadyQueueApi",
           "add_ready_q_routes"]

SUSPEND_READY_Q_PATH = f"{ADMIN_PREFIX}/suspend-ready-q/v1"
#: Ready queues the admin API holds at most at once (a new name past it is a 429): each
#: new one gives every open path its hold anew, and each lasts until it ends.
MAX_READY_HOLDS = 10_000
BUMP_PATH = f"{ADMIN_PREFIX}/bump-config-epoch"


class ReadyQueueApi:
    """The handlers of this module, bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @json_errors
    async def suspend_create(self, request: web.Request) -> web.StreamResponse:
        suspension = parse_ready_suspension(await json_object(request))
        holds = manager_of(self.runtime).egress.ready_holds
        if holds.get(suspension.name) is None and len(holds.list()) >= MAX_READY_HOLDS:
            raise ApiError(429, f"too many suspended ready queues ({MAX_READY_HOLDS}): cancel "
                           "some or wait for them to end")  # fmt: skip
        suspension.id = peer_rule_id(request) or suspension.id  # one id across the node
        await add_ready_suspension(self.runtime, services_of(self.runtime), suspension)
        return web.json_response({"id": suspension.id})

    @json_errors
    async def suspend_list(self, request: web.Request) -> web.StreamResponse:
        holds = manager_of(self.runtime).egress.ready_holds
        return web.json_response([s.to_json() for s in holds.list()])

    @json_errors
    async def suspend_cancel(self, request: web.Request) -> web.StreamResponse:
        suspension_id = await rule_id_of(request)
        services = services_of(self.runtime)
        if not await cancel_ready_suspension(self.runtime, services, suspension_id):
            raise ApiError(404, f"no active ready-queue suspension with id {suspension_id!r}")
        return web.json_response({"id": suspension_id})

    @json_errors
    async def states(self, request: web.Request) -> web.StreamResponse:
        from kumocore.admin.ready_q_states import handle_ready_q_states

        return await handle_ready_q_states(manager_of(self.runtime), request)

    @json_errors
    async def inspect(self, request: web.Request) -> web.StreamResponse:
        from kumocore.admin.inspect_ready_q import inspect_ready_q

        refuse_unknown_query(request, ("queue_name", "include_scheduled_queues"))
        name = request.query.get("queue_name", "")
        if not name:
            raise ApiError(400, "query parameter 'queue_name' is required")
        flag = request.query.get("include_scheduled_queues", "false").lower()
        if flag not in ("true", "false"):
            raise ApiError(400, "query parameter 'include_scheduled_queues' must be true or "
                           "false")  # fmt: skip
        view = await inspect_ready_q(manager_of(self.runtime), name, flag == "true")
        if view is None:
            raise ApiError(404, f"no such ready queue {name}")
        return web.json_response(view)

    @json_errors
    async def bump_config_epoch(self, request: web.Request) -> web.StreamResponse:
        await _no_fields(request)
        if self.runtime.hooks.bump_config_epoch() == 0:
            raise ApiError(501, "no installed plugin provides a configuration epoch to bump "
                           "(hook kumo_register_config_epoch_bump)")  # fmt: skip
        return web.Response(status=200)  # KumoMTA answers 200 with an empty body


async def _no_fields(request: web.Request) -> None:
    """A request that takes no fields: an empty body, ``{}`` or ``null`` (what kcli and
    the CLI send); anything else would be ignored, so it is refused (400), whitespace
    alone too (not JSON: schemathesis found ``\r\n`` accepted)."""
    raw = await request.read()
    if not raw:
        return
    try:
        body = orjson.loads(raw)
    except ValueError as exc:  # orjson.JSONDecodeError
        raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
    if body not in (None, {}):
        raise ApiError(400, "this request takes no fields: send an empty body, {} or null")


def add_ready_q_routes(app: web.Application, runtime: Runtime) -> None:
    """Add this module's endpoints to ``app`` (called by :func:`add_admin_routes`)."""
    api = ReadyQueueApi(runtime)
    app.router.add_post(SUSPEND_READY_Q_PATH, api.suspend_create)
    app.router.add_get(SUSPEND_READY_Q_PATH, api.suspend_list)
    app.router.add_delete(SUSPEND_READY_Q_PATH, api.suspend_cancel)
    app.router.add_post(BUMP_PATH, api.bump_config_epoch)
    app.router.add_get(f"{ADMIN_PREFIX}/ready-q-states/v1", api.states)
    app.router.add_get(f"{ADMIN_PREFIX}/inspect-ready-q/v1", api.inspect)
