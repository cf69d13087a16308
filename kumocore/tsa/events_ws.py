"""``/subscribe_event_v1``: KumoMTA's websocket of automation suspensions.

A KumoMTA node whose shaping helper subscribes to a kumocore node connects here: it gets
every active suspension first, then each new or extended one as kumocore records it, in
KumoMTA's shapes — ``{"ReadyQSuspension": {rule_hash, site_name, reason, source,
expires}}`` and ``{"SchedQSuspension": {rule_hash, tenant, domain, campaign, reason,
expires}}`` (``expires`` in RFC 3339) — and applies them with its own admin API.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from kumocore.logs.timestamps import rfc3339
from kumocore.node.stepwise import Slices
from kumocore.tsa.publish import SLICE

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime
    from kumocore.tsa.store import ActiveAction


def subscription_item(action: ActiveAction) -> dict[str, Any] | None:
    expires = rfc3339(action.expires)
    if action.kind == "Suspend":
        return {"ReadyQSuspension": {
            "rule_hash": action.id, "site_name": action.site, "reason": action.reason,
            "source": action.source, "expires": expires}}  # fmt: skip
    if action.kind in ("SuspendTenant", "SuspendCampaign"):
        return {"SchedQSuspension": {
            "rule_hash": action.id, "tenant": action.tenant, "domain": action.domain,
            "campaign": action.campaign, "reason": action.reason, "expires": expires}}  # fmt: skip
    return None


async def subscribe_event_v1(runtime: Runtime, request: web.Request) -> web.StreamResponse:
    engine = runtime.tsa
    if engine is None:
        return web.json_response(
            {"error": "traffic shaping automation is not configured on this node"}, status=404)
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    updates = engine.subscribe()  # before the snapshot: nothing recorded in between is lost
    closed = asyncio.ensure_future(_closed(ws))
    try:
        slices = Slices(SLICE)  # the snapshot of 20,000 actions at once: a 0.2 s stall
        for action in list(engine.actions.values()):
            await _send(ws, action)
            await slices.pause()
        # Until it goes away, or falls so far behind that the engine dropped it (it gets
        # the snapshot again when it reconnects). One that stops reading is hung up on
        # by the heartbeat: no pong within 45 s.
        while not closed.done() and engine.subscribed(updates):
            getter = asyncio.ensure_future(updates.get())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await _send(ws, getter.result())
    finally:
        closed.cancel()
        engine.unsubscribe(updates)
        await ws.close()
    return ws


async def _send(ws: web.WebSocketResponse, action: ActiveAction) -> None:
    item = subscription_item(action)
    if item is not None:
        await ws.send_json(item)


async def _closed(ws: web.WebSocketResponse) -> None:
    """Returns when the subscriber goes away (it sends nothing we need)."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return
