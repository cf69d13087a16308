"""The ``/api/admin/*`` endpoints and ``/metrics``, with KumoMTA's request/response shapes.

The HTTP listener calls :func:`add_admin_routes` while building its application and
restricts these paths to trusted hosts; nothing here authenticates. Errors are JSON
``{"error": "..."}``: 400 for a bad request body or query, 404 for an unknown id, 503 while
the queues are not started.

kumocore bounds what one caller can make it hold: 429 once the active bounce (or
suspension) rules number ``queue_rules.MAX_RULES`` or name ``MAX_RULE_NAMES`` queues.

One deliberate difference from KumoMTA: ``POST /api/admin/bounce/v1`` bounces matching
queued messages before it answers, so its ``bounced``/``total_bounced`` are real counts
(KumoMTA answers first and always reports 0, kumomta#191).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.admin.api_support import (
    ADMIN_PREFIX,
    ApiError,
    json_answer,
    json_errors,
    json_object,
    query_limit,
    refuse_unknown_query,
    rule_id_of,
    services_of,
)
from kumocore.admin.metrics import CONTENT_TYPE, reception_counter
from kumocore.admin.peers import peer_rule_id
from kumocore.admin.queue_rules import (
    add_bounce,
    add_suspension,
    cancel_bounce,
    cancel_suspension,
    room_for,
    suspension_entry,
)
from kumocore.admin.summary import (
    MAX_LISTED,
    inspect_message,
    queue_summary,
    queue_summary_steps,
)
from kumocore.node.stepwise import run_stepwise
from kumocore.queue.admin import parse_rule

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime
    from kumocore.node.services import Services
    from kumocore.queue.admin import QueueRule
    from kumocore.queue.manager import QueueManager

__all__ = ["ADMIN_PREFIX", "STATUS_PATH", "AdminApi", "add_admin_routes", "status_of",
           "status_stepwise"]

STATUS_PATH = f"{ADMIN_PREFIX}/status/v1"
#: Queues of each kind the queue summary lists unless ``?limit=`` asks for more (up to
#: ``summary.MAX_LISTED``), and those the status page lists.
DEFAULT_LISTED = 1_000
STATUS_LISTED = 500

def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


class AdminApi:
    """The handlers, bound to one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        from kumocore.admin.scrape import Coalesced, scrape_json, scrape_text

        self.runtime = runtime
        # Scrapes arriving together share one computation (kumocore.admin.scrape).
        self._text = Coalesced(lambda: scrape_text(self._services()))
        self._json = Coalesced(lambda: scrape_json(self._services()))

    def _services(self) -> Services:
        return services_of(self.runtime)

    def _manager(self) -> QueueManager:
        return self._services().queues

    # ------------------------------------------------------------------ bounce
    @json_errors
    async def bounce_create(self, request: web.Request) -> web.StreamResponse:
        rule = parse_rule(await json_object(request))
        _refuse_past_bounds(self._manager().admin.list_bounces(), rule, "bounce")
        rule.id = peer_rule_id(request) or rule.id
        await add_bounce(self.runtime, self._services(), rule)
        return web.json_response(
            {"id": rule.id, "bounced": dict(rule.bounced), "total_bounced": rule.total_bounced}
        )

    @json_errors
    async def bounce_list(self, request: web.Request) -> web.StreamResponse:
        rules = self._manager().admin.list_bounces()
        return web.json_response([rule.to_json() for rule in rules])

    @json_errors
    async def bounce_cancel(self, request: web.Request) -> web.StreamResponse:
        rule_id = await rule_id_of(request)
        if not await cancel_bounce(self.runtime, self._services(), rule_id):
            raise ApiError(404, f"no active bounce rule with id {rule_id!r}")
        return web.json_response({"id": rule_id})

    # ------------------------------------------------------------------ suspend
    @json_errors
    async def suspend_create(self, request: web.Request) -> web.StreamResponse:
        rule = parse_rule(await json_object(request))
        _refuse_past_bounds(self._manager().admin.list_suspensions(), rule, "suspension")
        rule.id = peer_rule_id(request) or rule.id
        await add_suspension(self.runtime, self._services(), rule)
        return web.json_response({"id": rule.id})

    @json_errors
    async def suspend_list(self, request: web.Request) -> web.StreamResponse:
        rules = self._manager().admin.list_suspensions()
        return web.json_response([suspension_entry(rule) for rule in rules])

    @json_errors
    async def suspend_cancel(self, request: web.Request) -> web.StreamResponse:
        rule_id = await rule_id_of(request)
        if not await cancel_suspension(self.runtime, self._services(), rule_id):
            raise ApiError(404, f"no active suspension with id {rule_id!r}")
        return web.json_response({"id": rule_id})

    # ------------------------------------------------------------------ views
    @json_errors
    async def inspect(self, request: web.Request) -> web.StreamResponse:
        message_id = request.query.get("id", "")
        if not message_id:
            raise ApiError(400, "query parameter 'id' is required")
        services = self._services()
        result = await inspect_message(
            services.queues,
            services.store,
            message_id,
            want_body=_flag(request.query.get("want_body")),
        )
        if result is None:
            raise ApiError(404, f"no queued message with id {message_id!r}")
        return web.json_response(result)

    @json_errors
    async def rebind(self, request: web.Request) -> web.StreamResponse:
        from kumocore.queue.rebind import parse_rebind, rebind

        services = self._services()
        moved = await rebind(services.queues, parse_rebind(await json_object(request)),
                             services.intake.resolve_queue_config)  # fmt: skip
        return web.json_response(moved)

    @json_errors
    async def inspect_sched_q(self, request: web.Request) -> web.StreamResponse:
        from kumocore.admin.sched_q import MAX_MESSAGES, sched_q_steps

        name = request.query.get("queue_name", "")
        if not name:
            raise ApiError(400, "query parameter 'queue_name' is required")
        limit = query_limit(request, MAX_MESSAGES, MAX_MESSAGES)
        want_body = request.query.get("want_body", "false").lower()
        if want_body not in ("true", "false"):
            raise ApiError(400, "query parameter 'want_body' must be true or false")
        steps = sched_q_steps(self._manager(), name, limit=limit, want_body=want_body == "true")
        return json_answer(await run_stepwise(steps))

    @json_errors
    async def summary(self, request: web.Request) -> web.StreamResponse:
        refuse_unknown_query(request, ("limit",))
        limit = query_limit(request, MAX_LISTED, DEFAULT_LISTED)
        return json_answer(await run_stepwise(queue_summary_steps(self._manager(), limit)))

    @json_errors
    async def metrics(self, request: web.Request) -> web.StreamResponse:
        self._services()  # 503 before the queues start
        return web.Response(body=await self._text(), headers={"Content-Type": CONTENT_TYPE})

    @json_errors
    async def metrics_json(self, request: web.Request) -> web.StreamResponse:
        self._services()
        return web.Response(body=await self._json(), content_type="application/json")

    async def status(self, request: web.Request) -> web.StreamResponse:
        return json_answer(await status_stepwise(self.runtime))


async def status_stepwise(runtime: Runtime) -> dict[str, Any]:
    """:func:`status_of`, its queue summary computed a slice at a time."""
    from kumocore.status.data import queue_manager

    manager = queue_manager(runtime)
    summary = None
    if manager is not None:
        summary = await run_stepwise(queue_summary_steps(manager, STATUS_LISTED))
    return _status(runtime, summary)


def _refuse_past_bounds(active: list[QueueRule], rule: QueueRule, kind: str) -> None:
    refusal = room_for(active, rule, kind)
    if refusal is not None:
        raise ApiError(429, refusal)


def status_of(runtime: Runtime) -> dict[str, Any]:
    """This worker's status for the status page (:mod:`kumocore.status.data`)."""
    from kumocore.status.data import queue_manager

    manager = queue_manager(runtime)
    summary = queue_summary(manager, STATUS_LISTED) if manager is not None else None
    return _status(runtime, summary)


def _status(runtime: Runtime, summary: dict[str, Any] | None) -> dict[str, Any]:
    from kumocore import __version__
    from kumocore.mail.queue_name import parse_queue_name
    from kumocore.status.data import local_status

    services = runtime.services
    received = reception_counter(services).counts if services is not None else {}
    return local_status(runtime, summary=summary, received=received,
                        version=__version__, parse_name=parse_queue_name)  # fmt: skip


def add_admin_routes(app: web.Application, runtime: Runtime) -> None:
    """Add the admin endpoints and ``/metrics`` to ``app`` (called by the HTTP listener)."""
    api = AdminApi(runtime)
    routes = app.router
    for path, create, listing, cancel in (
        ("bounce", api.bounce_create, api.bounce_list, api.bounce_cancel),
        ("suspend", api.suspend_create, api.suspend_list, api.suspend_cancel),
    ):
        routes.add_post(f"{ADMIN_PREFIX}/{path}/v1", create)
        routes.add_get(f"{ADMIN_PREFIX}/{path}/v1", listing)
        routes.add_delete(f"{ADMIN_PREFIX}/{path}/v1", cancel)
    routes.add_get(f"{ADMIN_PREFIX}/inspect-message/v1", api.inspect)
    routes.add_get(f"{ADMIN_PREFIX}/queue-summary/v1", api.summary)
    routes.add_post(f"{ADMIN_PREFIX}/rebind/v1", api.rebind)
    routes.add_get(f"{ADMIN_PREFIX}/inspect-sched-q/v1", api.inspect_sched_q)
    from kumocore.xfer.admin import add_xfer_admin_routes
    from kumocore.xfer.receive import add_xfer_inject_route

    add_xfer_inject_route(app, runtime)  # POST /api/xfer/inject/v1 (the receiving side)
    add_xfer_admin_routes(app, runtime)  # POST /api/admin/xfer/v1, /api/admin/xfer/cancel/v1
    from kumocore.admin.node_ops import add_node_ops_routes
    from kumocore.admin.ready_q import add_ready_q_routes
    from kumocore.admin.resolve_path import add_resolve_route
    from kumocore.tsa.http import add_tsa_routes

    add_ready_q_routes(app, runtime)  # suspend-ready-q, bump-config-epoch
    add_node_ops_routes(app, runtime)  # log filter, abort-ready-q-conn, machine-info
    add_resolve_route(app, runtime)  # resolve-egress-path
    from kumocore.admin.spool_compact import add_spool_compact_route

    add_spool_compact_route(app, runtime)  # spool-compact
    add_tsa_routes(app, runtime)
    from kumocore.trace.ws import add_trace_routes

    add_trace_routes(app, runtime)  # trace-smtp-server, trace-smtp-client (WebSockets)
    routes.add_get("/metrics", api.metrics)
    routes.add_get("/metrics.json", api.metrics_json)
    routes.add_get(STATUS_PATH, api.status)  # the status page's data (kumocore addition)
