"""Whole bounce and suspension rules, for the other workers of ``serve --workers N``.

KumoMTA's ``GET /api/admin/bounce/v1`` and ``/suspend/v1`` listings leave out parts of a
rule: its ``queue_names``, ``suppress_logging``, its exact end (only the whole seconds
left, as ``duration``) and, for a suspension, its ``routing_domain``. A restarted worker
needs all of them to hold the same rule as the others (:mod:`kumocore.admin.node_adopt`),
so each worker answers ``GET /kumocore/peer/rules/{bounce,suspend}`` with them. The route
is added to the worker's private socket only, never to the public HTTP listener, so the
KumoMTA listings keep their shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.queue.admin import QueueRule

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

__all__ = ["PEER_RULES_PATH", "add_private_routes", "rule_entry", "rule_of_entry"]

#: ``{kind}`` is ``bounce`` or ``suspend``.
PEER_RULES_PATH = "/kumocore/peer/rules"

_SELECTORS = ("campaign", "tenant", "domain", "routing_domain")


def rule_entry(rule: QueueRule) -> dict[str, Any]:
    """Everything needed to rebuild ``rule`` elsewhere, except its bounce counts (the
    messages this worker bounced are counted here only, or the node's sum would count
    them twice)."""
    entry: dict[str, Any] = {name: getattr(rule, name) for name in _SELECTORS}
    entry.update(id=rule.id, reason=rule.reason, expires=rule.expires, duration=rule.duration,
                 queue_names=list(rule.queue_names), suppress_logging=rule.suppress_logging)
    return entry


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def rule_of_entry(entry: Any) -> QueueRule | None:
    """The rule an entry of :func:`rule_entry` describes; None if it is not one."""
    if not isinstance(entry, dict):
        return None
    rule_id, reason = entry.get("id"), entry.get("reason")
    if not (isinstance(rule_id, str) and rule_id and isinstance(reason, str) and reason):
        return None
    if not (_number(entry.get("expires")) and _number(entry.get("duration"))):
        return None
    names = entry.get("queue_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    suppress = entry.get("suppress_logging")
    if not isinstance(suppress, bool) or not all(_optional_text(entry.get(s)) for s in _SELECTORS):
        return None
    campaign, tenant, domain, routing_domain = (entry.get(name) for name in _SELECTORS)
    return QueueRule(reason=reason, expires=float(entry["expires"]),
                     duration=float(entry["duration"]),
                     campaign=campaign, tenant=tenant, domain=domain,
                     routing_domain=routing_domain, queue_names=tuple(names),
                     suppress_logging=suppress, id=rule_id)  # fmt: skip


def add_private_routes(app: web.Application, runtime: Runtime) -> None:
    """A worker's private-socket app: the admin endpoints, and
    ``GET /kumocore/peer/rules/{kind}``."""
    from kumocore.admin.routes import add_admin_routes

    add_admin_routes(app, runtime)

    async def listing(request: web.Request) -> web.StreamResponse:
        services = runtime.services
        if services is None:
            return web.json_response({"error": "the queues are not started"}, status=503)
        admin = services.queues.admin
        kind = request.match_info["kind"]
        rules = admin.list_bounces() if kind == "bounce" else admin.list_suspensions()
        return web.json_response([rule_entry(rule) for rule in rules])

    app.router.add_get(PEER_RULES_PATH + "/{kind:bounce|suspend}", listing)
