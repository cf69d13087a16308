"""The trace bus: who is tracing, with which filter, and a bounded queue for each.

A publishing site (the SMTP session, the delivery client) tests ``bus.active`` before it
builds anything, so tracing costs nothing while nobody traces. :meth:`TraceBus.publish`
copies the connection meta once and hands the event to every subscriber whose filter
takes it. A subscriber's queue is bounded by events and by bytes: when its WebSocket
client reads too slowly the oldest events are dropped and counted, and the client is told
``Tracer Lagged behind and missed N events`` (KumoMTA's words, from its broadcast
channel's lag). Publishing never waits, so a client that stops reading cannot stall an
SMTP session or grow the node's memory.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from kumocore.logs.timestamps import rfc3339

#: Payload kinds that carry no value (serialised as a bare string, as serde does).
UNIT_KINDS = frozenset({"Connected", "Closed", "BeginSession", "MessageObtained"})
#: Events a subscriber may hold before the oldest are dropped.
MAX_EVENTS = 8192
#: Bytes (payload text plus :data:`EVENT_OVERHEAD` per event) a subscriber may hold.
MAX_BYTES = 8 * 1024 * 1024
#: What an event costs besides its payload text: the event object and its meta copy.
EVENT_OVERHEAD = 600
#: Tracing clients one side takes at once: each may hold :data:`MAX_BYTES`, so this bounds
#: what tracing can cost the node (64 x 8 MiB), and the per-event fan-out work.
MAX_SUBSCRIBERS = 64

Matcher = Callable[["dict[str, Any] | None"], bool]


class TraceEvent:
    """One traced happening: ``{"conn_meta", "payload", "when"}`` on the wire."""

    __slots__ = ("conn_meta", "kind", "size", "value", "when")

    def __init__(self, conn_meta: dict[str, Any] | None, kind: str, value: Any = None) -> None:
        self.conn_meta = conn_meta
        self.kind = kind
        self.value = value
        self.when = time.time()
        self.size = EVENT_OVERHEAD + (len(value) if isinstance(value, (bytes, str)) else 0)

    def payload(self, terse: str | None = None) -> Any:
        """KumoMTA's payload enum as serde writes it; ``terse`` names the kind
        (``Read`` or ``Write``) whose multi-line data is cut to its first line."""
        kind, value = self.kind, self.value
        if kind in UNIT_KINDS:
            return kind
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if kind == terse and isinstance(value, str):
            snippet = _first_of_several_lines(value)
            if snippet is not None:
                size = len(self.value) if isinstance(self.value, (bytes, str)) else 0
                return {f"Abbreviated{kind}": {"snippet": snippet, "len": size}}
        return {kind: value}

    def to_json(self, terse: str | None = None) -> bytes:
        return orjson.dumps(
            {
                "conn_meta": self.conn_meta,
                "payload": self.payload(terse),
                "when": rfc3339(self.when),
            }
        )


def _first_of_several_lines(text: str) -> str | None:
    """The first line of ``text`` when it has more than one (else None: kept whole)."""
    lines = text.rstrip().split("\n", 1)
    if len(lines) < 2:
        return None
    return lines[0].rstrip("\r")


def lagged_event(missed: int) -> TraceEvent:
    """What a subscriber is told in place of the events it missed."""
    return TraceEvent(
        None,
        "Diagnostic",
        {"level": "ERROR", "message": f"Tracer Lagged behind and missed {missed} events"},
    )


class Subscriber:
    """One tracing client: its filter and its bounded queue of events."""

    def __init__(
        self, matches: Matcher, *, max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES
    ) -> None:
        self.matches = matches
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.queue: deque[TraceEvent] = deque()
        self.bytes = 0
        self.dropped = 0  # since the client was last told
        self.dropped_total = 0
        self._ready = asyncio.Event()

    def push(self, event: TraceEvent) -> None:
        queue = self.queue
        queue.append(event)
        self.bytes += event.size
        while len(queue) > self.max_events or self.bytes > self.max_bytes:
            self.bytes -= queue.popleft().size
            self.dropped += 1
            self.dropped_total += 1
        self._ready.set()

    async def get(self) -> TraceEvent:
        """The next event to send: first a lag notice if events were dropped."""
        while not self.queue and not self.dropped:
            self._ready.clear()
            await self._ready.wait()
        if self.dropped:
            missed, self.dropped = self.dropped, 0
            return lagged_event(missed)
        event = self.queue.popleft()
        self.bytes -= event.size
        return event


class TraceBus:
    """The subscribers of one side (listener or delivery client)."""

    __slots__ = ("abbreviate", "active", "subscribers")

    def __init__(self, abbreviate: str) -> None:
        self.abbreviate = abbreviate  # the payload kind ``terse`` shortens
        self.active = False
        self.subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        self.subscribers = [*self.subscribers, subscriber]
        self.active = True
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers = [s for s in self.subscribers if s is not subscriber]
        self.active = bool(self.subscribers)

    def publish(self, conn_meta: dict[str, Any] | None, kind: str, value: Any = None) -> None:
        """Hand an event to every subscriber whose filter takes ``conn_meta`` (copied
        once: the session goes on changing its own)."""
        event: TraceEvent | None = None
        for subscriber in self.subscribers:
            if subscriber.matches(conn_meta):
                if event is None:
                    event = TraceEvent(None if conn_meta is None else dict(conn_meta), kind, value)
                subscriber.push(event)

    def diagnostic(self, conn_meta: dict[str, Any] | None, level: str, message: str) -> None:
        self.publish(conn_meta, "Diagnostic", {"level": level, "message": message})


#: The listener's sessions (``/api/admin/trace-smtp-server/v1``).
SERVER_TRACE = TraceBus("Read")
#: The delivery client's sessions (``/api/admin/trace-smtp-client/v1``).
CLIENT_TRACE = TraceBus("Write")
