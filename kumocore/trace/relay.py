"""A trace of the whole node under ``serve --workers N``.

Each worker runs its own SMTP sessions and deliveries, and the kernel hands the trace
WebSocket to any one of them. That worker subscribes locally *and* opens the same trace,
with the same filter, on every other worker's private socket (:mod:`kumocore.admin.peers`);
what they send is put into the local subscriber's queue as it came (already filtered and,
with ``terse``, abbreviated there). The bound holds for the relayed events too: they are
counted and dropped like local ones, and each worker reports its own lag.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aiohttp

from kumocore.admin.peers import socket_path
from kumocore.trace.bus import EVENT_OVERHEAD, Subscriber, TraceEvent

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


async def _relay(peers: NodePeers, index: int, path: str, request: str,
                 subscriber: Subscriber) -> None:  # fmt: skip
    connector = aiohttp.UnixConnector(path=str(socket_path(peers.node_dir, index)))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(f"http://worker{path}", heartbeat=30) as ws,
    ):
        await ws.send_str(request)
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            subscriber.push(RelayedEvent(message.data))


async def _relay_quietly(peers: NodePeers, index: int, path: str, request: str,
                         subscriber: Subscriber) -> None:  # fmt: skip
    # A worker that is restarting is left out, as the admin fan-out leaves it out.
    with contextlib.suppress(aiohttp.ClientError, OSError):
        await _relay(peers, index, path, request, subscriber)


def relay_other_workers(
    peers: NodePeers, path: str, request: str, subscriber: Subscriber
) -> list[asyncio.Task[None]]:
    """Start relaying every other worker's trace into ``subscriber``."""
    return [
        asyncio.create_task(_relay_quietly(peers, index, path, request, subscriber))
        for index in range(peers.count)
        if index != peers.index
    ]
