"""The state of one outbound SMTP connection, and how it writes commands and reads replies.

:class:`SessionIo` is the base of :class:`kumocore.delivery.client.SmtpClientConnection`
(with :class:`~kumocore.delivery.client_setup.SessionSetup` between them): it holds the
connection's state, writes (traced while someone traces, see :data:`CLIENT_TRACE`) and
waits for the MX to take what was written, reads replies through a
:class:`~kumocore.delivery.wire.ReplyReader`, and ends the session when a failure on the
wire happens: aborted, with the 4xx reply that stands for it (:meth:`SessionIo._lost`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from kumocore.delivery.client_failure import failure_response
from kumocore.delivery.tls import SessionInfo
from kumocore.delivery.wire import ReplyReader, WriteTimeout
from kumocore.mail.response import Response
from kumocore.node.streams import drain_needed
from kumocore.queue.dispatchers import current as current_dispatcher
from kumocore.trace.bus import CLIENT_TRACE
from kumocore.trace.events import ClientTracer

if TYPE_CHECKING:
    from kumocore.config.egress import EgressPathConfig
    from kumocore.delivery.dane import DanePolicy


def path_timeout(path: EgressPathConfig, name: str, default: float) -> float:
    """The path's timeout ``name`` (seconds), or ``default`` when it has none."""
    value = getattr(path, name, None)
    return float(value) if value is not None else default


class SessionIo:
    """An SMTP client connection's state and I/O primitives (see the module doc)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        mx_host: str,
        address: str,
        path: EgressPathConfig,
        tls_mode: str | None = None,
        dane: DanePolicy | None = None,
        tracer: ClientTracer | None = None,
    ) -> None:
        self.replies = ReplyReader(reader)
        # The connection task's dispatcher (None outside one): every command written and
        # every reply awaited is progress for its watchdog (kumocore.queue.watchdog).
        dispatcher = current_dispatcher.get()
        self._progress = self.replies.progress = (
            dispatcher.touch if dispatcher is not None else None
        )
        # What is read and written goes to CLIENT_TRACE while someone traces.
        self.tracer = self.replies.tracer = tracer if tracer is not None else ClientTracer()
        # TLSA records the certificate must match (kumocore.delivery.dane), if any.
        self.dane = dane if dane is not None and dane.checks_certificate else None
        # enable_tls, unless the caller overrides it (a site remembered as broken TLS).
        self.tls_mode = tls_mode or str(getattr(path, "enable_tls", "Opportunistic"))
        self.writer = writer
        self.path = path
        self.peer: dict[str, Any] = {"name": mx_host, "addr": address}
        # The ready queue this session serves, for texts (the caller sets it).
        self.site = mx_host
        if dane is not None and dane.address_secure:
            self.peer["is_secure"] = True  # KumoMTA's ResolvedAddress.is_secure
        local = writer.get_extra_info("sockname")
        # KumoMTA's {address, server, protocol} in log records (server/protocol: proxied)
        self.source_address: dict[str, Any] | None = (
            {"address": f"{local[0]}:{local[1]}"} if local else None
        )
        self.extensions: dict[str, str] = {}
        self.tls = False
        # The protocol and TLS outcome of this session, for the log records.
        self.session = SessionInfo()
        self.closed = False
        self.deliveries = 0
        # KumoMTA's rule: no RSET before a connection's first transaction; before later
        # ones when ``enable_rset`` is true, or after a transaction that failed.
        self._rset_next = False
        # Set when the session ended by a failure rather than a reply: the queue backs the
        # path off after it.
        self.failure: Response | None = None

    # ---------------------------------------------------------------- primitives
    async def _command(self, line: str, command: str, timeout: float) -> Response:
        self._write(line.encode("utf-8") + b"\r\n")
        await self._drain(timeout, command)
        return await self.replies.read(command, timeout)

    def _write(self, data: bytes) -> None:
        self.writer.write(data)
        if CLIENT_TRACE.active:
            self.tracer.write(data)

    async def _drain(self, timeout: float, writing: str | None) -> None:
        """Wait (within ``timeout``) until the MX takes what was written: the commands
        named ``writing``, or (None) the message body. A :class:`WriteTimeout` if not."""
        self.replies.timeout = timeout  # for the text, should the wait time out
        if self._progress is not None:
            self._progress()
        if drain_needed(self.writer):  # usually sent already: skip two coroutine frames
            try:
                await asyncio.wait_for(self.writer.drain(), timeout)
            except TimeoutError as exc:
                raise WriteTimeout(writing, timeout) from exc

    def abort(self) -> None:
        """Drop the connection at once: no QUIT, no waiting for unsent data."""
        self.closed = True
        self.replies.close()
        self.writer.transport.abort()
        if CLIENT_TRACE.active:
            self.tracer.close()

    def _lost(self, exc: BaseException) -> Response:
        """End the session after ``exc``; the 4xx reply that stands for it."""
        where = f"{self.peer['name']} [{self.peer['addr']}]"
        self.failure = failure_response(
            exc, self.replies.command, site=self.site, peer=where, timeout=self.replies.timeout
        )
        if CLIENT_TRACE.active:  # why, then Closed (from abort), as KumoMTA traces it
            self.tracer.diagnostic("ERROR", self.failure.to_single_line())
        self.abort()
        return self.failure

    def in_step(self) -> bool:
        """Whether the session can take a transaction: open, nothing received that no
        command asked for (stray replies, or a ``421`` the MX sent before hanging up
        while the session was idle) and not closed by the MX."""
        return not (self.closed or self.replies.buffered() or self.replies.reader.at_eof())
