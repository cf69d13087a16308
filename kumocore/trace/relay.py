"""A trace of the whole node under ``serve --workers N``.

Each worker runs its own SMTP sessions and deliveries, and the kernel hands the trace
WebSocket to any one of them. That worker subscribes locally *and* opens the same trace,
with the same filter, on every other worker's private socket (:mod:`kumocore.admin.peers`);
what they send is put into the local subscriber's queue as it came (already filtered and,
with ``terse``, abbreviated there). The bound holds for the relayed events too: they are
counted and dropped like local ones, and each worker reports its own lag.
A worker that dies (and is restarted) or refuses the link is retried every
:data:`RETRY_SECONDS` while the trace lasts, and the tracing client is told when a
worker's link is lost and when it is back, rather than silently missing its sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aiohttp

from kumocore.admin.peers import socket_path
from kumocore.trace.bus import EVENT_OVERHEAD, Subscriber, TraceEvent

#: Seconds between attempts to reach a worker whose trace link is down.
RETRY_SECONDS = 1.0

if TYPE_CHECKING:
    from kumocore.admin.peers import NodePeers


class RelayedEvent(TraceEvent):
    """An event another worker already serialised: sent on as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__(None, "Relayed")
        self.text = text
        self.size = EVENT_OVERHEAD + len(text)

    def to_json(self, terse: str | None = None) -> bytes:
        return self.text.encode()


def _diagnostic(level: str, message: str) -> TraceEvent:
    return TraceEvent(None, "Diagnostic", {"level": level, "message": message})


async def _relay(peers: NodePeers, index: int, path: str, request: str,
                 subscriber: Subscriber, linked: list[bool]) -> None:  # fmt: skip
    connector = aiohttp.UnixConnector(path=str(socket_path(peers.node_dir, index)))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(f"http://worker{path}", heartbeat=30) as ws,
    ):
        await ws.send_str(request)
        if not linked[0]:
            linked[0] = True
            subscriber.push(_diagnostic("INFO", f"worker {index} is traced again"))
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            subscriber.push(RelayedEvent(message.data))


async def _relay_quietly(peers: NodePeers, index: int, path: str, request: str,
                         subscriber: Subscriber) -> None:  # fmt: skip
    # A worker that is restarting is retried until it answers; the client hears once
    # that its sessions are missing (the link lost) and once that they are back.
    linked = [True]  # as if linked: a worker that is down at the start is reported
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            await _relay(peers, index, path, request, subscriber, linked)
        if linked[0]:
            linked[0] = False
            subscriber.push(_diagnostic(
                "ERROR", f"lost the trace of worker {index}: its sessions are missing "
                         "until it is reached again"))  # fmt: skip
        await asyncio.sleep(RETRY_SECONDS)


def relay_other_workers(
    peers: NodePeers, path: str, request: str, subscriber: Subscriber
) -> list[asyncio.Task[None]]:
    """Start relaying every other worker's trace into ``subscriber``."""
    return [
        asyncio.create_task(_relay_quietly(peers, index, path, request, subscriber))
        for index in range(peers.count)
        if index != peers.index
    ]
