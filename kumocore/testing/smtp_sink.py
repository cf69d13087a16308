"""A recording SMTP sink: a real aiosmtpd server on loopback that remembers what it got.

Like KumoMTA's test sink, recipients ask for failures: a local part containing
``tempfail`` gets ``451 4.3.0``, ``permfail`` gets ``550 5.1.1``, and ``tempfail-once``
fails only its first attempt. It records, per message, the client's source address, EHLO
name and connection number, and tracks the most concurrent connections per source
address, so tests can check egress sources and connection limits.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    sender: str
    recipient: str
    data: bytes
    source_ip: str
    ehlo: str
    connection: int
    at: float
    tls: bool = False  # the message came over STARTTLS


@dataclass
class SinkState:
    messages: list[Received] = field(default_factory=list)
    attempts: collections.Counter[str] = field(default_factory=collections.Counter)
    active: collections.Counter[str] = field(default_factory=collections.Counter)
    max_active: collections.Counter[str] = field(default_factory=collections.Counter)
    per_connection: collections.Counter[int] = field(default_factory=collections.Counter)
    connections: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class _Handler:
    def __init__(self, state: SinkState) -> None:
        self.state = state

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local = address.split("@")[0].lower()
        self.state.attempts[address] += 1
        if "tempfail-once" in local and self.state.attempts[address] == 1:
            return "451 4.3.0 try again later"
        if "tempfail" in local and "once" not in local:
            return "451 4.3.0 tempfail requested"
        if "permfail" in local:
            return "550 5.1.1 user unknown (permfail requested)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        connection: int = getattr(session, "sink_connection", 0)
        for rcpt in envelope.rcpt_tos:
            self.state.messages.append(
                Received(
                    sender=envelope.mail_from or "",
                    recipient=rcpt,
                    data=envelope.original_content or b"",
                    source_ip=str(session.peer[0]) if session.peer else "",
                    ehlo=session.host_name or "",
                    connection=connection,
                    at=time.time(),
                    tls=server._tls_protocol is not None,
                )
            )
        self.state.per_connection[connection] += 1
        self.state.arrived.set()
        return "250 2.0.0 OK queued"


class _SinkSMTP(SMTP):
    """Counts a connection in ``active`` from its EHLO/HELO until it ends.

    Not from the accept: a client that closes a connection (QUIT, FIN) and opens the next
    one at once can have the new one accepted in the same loop turn in which the old one's
    end is still unread, which would count one connection too many. Its EHLO comes only
    after the sink's greeting, a round trip later, when the old end has been read.
    """

    _counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        state: SinkState = self.event_handler.state
        state.connections += 1
        self.session.sink_connection = state.connections  # type: ignore[union-attr]
        self._sink_ip = transport.get_extra_info("peername")[0]

    def session_started(self) -> None:
        if not self._counted:
            self._counted = True
            state: SinkState = self.event_handler.state
            state.active[self._sink_ip] += 1
            state.max_active[self._sink_ip] = max(
                state.max_active[self._sink_ip], state.active[self._sink_ip])

    def session_ended(self) -> None:
        """The connection stops counting (idempotent: QUIT, the client's FIN, the loss)."""
        if self._counted:
            self._counted = False
            self.event_handler.state.active[self._sink_ip] -= 1

    async def smtp_EHLO(self, hostname: str) -> None:
        self.session_started()
        await super().smtp_EHLO(hostname)

    async def smtp_HELO(self, hostname: str) -> None:
        self.session_started()
        await super().smtp_HELO(hostname)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session_ended()
        super().connection_lost(exc)


class RecordingSink:
    """Start with ``await sink.start()``; ``sink.port`` is where it listens."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls_context = tls_context  # set: the sink offers STARTTLS with it
        self.state = SinkState()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> RecordingSink:
        loop = asyncio.get_running_loop()
        handler = _Handler(self.state)
        self._server = await loop.create_server(
            lambda: _SinkSMTP(
                handler, hostname="sink.test", enable_SMTPUTF8=True, decode_data=False,
                tls_context=self.tls_context,
            ),
            self.host,
            self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def messages(self) -> list[Received]:
        return self.state.messages

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` messages arrived (or fail loudly)."""
        deadline = time.monotonic() + timeout
        while len(self.state.messages) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"sink got {len(self.state.messages)} messages, expected {count}"
                )
            self.state.arrived.clear()
            try:
                await asyncio.wait_for(self.state.arrived.wait(), remaining)
            except TimeoutError:
                pass
        return self.state.messages

    async def __aenter__(self) -> RecordingSink:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
