"""``GET /api/admin/trace-smtp-server/v1`` and ``/api/admin/trace-smtp-client/v1``.

A WebSocket (trusted hosts only, as every ``/api/admin`` path): the client sends its
filter as one JSON text message (:mod:`kumocore.trace.filters`), then receives one JSON
text message per event. As in KumoMTA the subscription starts before the upgrade
completes, so nothing that happens once the client is connected is missed; events that
arrive before the filter are held and filtered when it comes. A client that reads too
slowly loses the oldest events and is told how many (:mod:`kumocore.trace.bus`); the
SMTP sessions never wait for it. A filter that cannot be used closes the socket with
code 1008 and the reason; a request without a WebSocket upgrade gets a 400 JSON error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from kumocore.admin.peers import PEER_APP_KEY
from kumocore.trace.bus import CLIENT_TRACE, MAX_SUBSCRIBERS, SERVER_TRACE, Subscriber, TraceBus
from kumocore.trace.filters import ClientFilter, ServerFilter, TraceRequestError
from kumocore.trace.relay import relay_other_workers

if TYPE_CHECKING:
    from kumocore.admin.peers import NodePeers
    from kumocore.node.runtime import Runtime

SERVER_PATH = "/api/admin/trace-smtp-server/v1"
CLIENT_PATH = "/api/admin/trace-smtp-client/v1"
#: Seconds the client has to send its filter after the upgrade.
REQUEST_TIMEOUT = 30.0
#: The largest filter message taken.
MAX_REQUEST = 64 * 1024

Parse = Callable[[Any], "ServerFilter | ClientFilter"]


def _accept_all(meta: dict[str, Any] | None) -> bool:
    return True


async def _read_filter(
    ws: web.WebSocketResponse, parse: Parse
) -> tuple[ServerFilter | ClientFilter, str]:
    """The client's filter, and its text (passed on to the other workers)."""
    message = await ws.receive(timeout=REQUEST_TIMEOUT)
    if message.type != WSMsgType.TEXT:
        raise TraceRequestError("expected the trace request as a JSON text message")
    try:
        body = orjson.loads(message.data)
    except ValueError as exc:
        raise TraceRequestError(f"the trace request is not valid JSON: {exc}") from None
    return parse(body), message.data


async def _closed(ws: web.WebSocketResponse) -> None:
    """Returns when the client goes away or sends anything but a ping (KumoMTA ends
    the trace on an unexpected message too); aiohttp answers pings itself."""
    async for _message in ws:
        return


async def _pump(
    ws: web.WebSocketResponse,
    subscriber: Subscriber,
    trace_filter: ServerFilter | ClientFilter,
    terse: str | None,
) -> None:
    while True:
        event = await subscriber.get()
        if event.conn_meta is not None and not trace_filter(event.conn_meta):
            continue  # held before the filter came
        # A text message, as KumoMTA sends (a client may refuse binary frames).
        await ws.send_str(event.to_json(terse).decode())


async def serve_trace(
    request: web.Request, bus: TraceBus, parse: Parse, peers: NodePeers | None
) -> web.StreamResponse:
    """Run one tracing client until it goes away; with ``peers``, the other workers'
    traces are relayed to it too (:mod:`kumocore.trace.relay`)."""
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_REQUEST)
    if not ws.can_prepare(request).ok:
        return web.json_response(
            {"error": "this endpoint is a WebSocket: connect with an Upgrade request"}, status=400
        )
    if len(bus.subscribers) >= MAX_SUBSCRIBERS:
        return web.json_response(
            {"error": f"too many tracing clients: at most {MAX_SUBSCRIBERS} at once"}, status=429)
    subscriber = bus.subscribe(Subscriber(_accept_all))
    try:
        await ws.prepare(request)
        try:
            trace_filter, text = await _read_filter(ws, parse)
        except (TraceRequestError, TimeoutError) as exc:
            reason = (str(exc) or "no trace request within 30s").encode()[:120]
            await ws.close(code=WSCloseCode.POLICY_VIOLATION,
                           message=reason.decode("utf-8", "ignore").encode())  # fmt: skip
            return ws
        subscriber.matches = trace_filter
        terse = bus.abbreviate if trace_filter.terse else None
        tasks = [asyncio.ensure_future(_pump(ws, subscriber, trace_filter, terse)),
                 asyncio.ensure_future(_closed(ws))]  # fmt: skip
        if peers is not None:
            tasks += relay_other_workers(peers, request.path, text, subscriber)
        try:
            await asyncio.wait(tasks[:2], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # Their ends (a cancel, a client gone mid-send) are of no further interest.
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        bus.unsubscribe(subscriber)
        await ws.close()
    return ws


def add_trace_routes(app: web.Application, runtime: Runtime) -> None:
    """The two routes; on a worker's public listener (``serve --workers N``) they relay
    the other workers' traces, on its private socket (asked by a peer) only its own."""

    def peers(request: web.Request) -> NodePeers | None:
        return None if request.app.get(PEER_APP_KEY, False) else runtime.node

    async def server(request: web.Request) -> web.StreamResponse:
        return await serve_trace(request, SERVER_TRACE, ServerFilter.parse, peers(request))

    async def client(request: web.Request) -> web.StreamResponse:
        return await serve_trace(request, CLIENT_TRACE, ClientFilter.parse, peers(request))

    app.router.add_get(SERVER_PATH, server)
    app.router.add_get(CLIENT_PATH, client)
