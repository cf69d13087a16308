"""The I/O layer of an ESMTP session: aiosmtpd's protocol, set up cheaply, plus the
reading, writing, timeout and STARTTLS primitives the session logic builds on.

:class:`SmtpProtocol` subclasses :class:`aiosmtpd.smtp.SMTP` and keeps what aiosmtpd does
well: the asyncio protocol and stream plumbing, the STARTTLS transport switch (which
discards plaintext pipelined after STARTTLS, CVE-2024-34083) and connection teardown.
Commands are not aiosmtpd's: :class:`kumocore.reception.smtp.session.EsmtpSession` runs its own
command loop on top of these primitives.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto as sslproto
import ssl
import weakref
from typing import Any, cast

import structlog
from aiosmtpd.smtp import SMTP

from kumocore.config.cidr import join_host_port
from kumocore.conn_meta import ConnMeta
from kumocore.node.streams import drain_needed
from kumocore.reception.smtp.data import (
    Budget,
    DataOverBudget,
    DataTooBig,
    Unstuffed,
    read_message,
)
from kumocore.trace.bus import SERVER_TRACE

log = structlog.get_logger("kumocore.reception.smtp")

#: Seconds a closed connection may take to flush its last replies before it is aborted:
#: a client that never reads would otherwise keep the socket (and about 3 MB of kernel
#: buffers) for ever, counted by no limit once its session was released.
CLOSE_GRACE = 5.0


def format_reply(code: int, text: str) -> bytes:
    """``code`` and ``text`` on the wire; a multi-line text becomes a multi-line reply."""
    if "\n" not in text and "\r" not in text:  # nearly every reply: skip split and join
        return f"{code} {text}\r\n".encode("utf-8", "replace")
    lines = text.replace("\r", "").split("\n")
    out = "".join(f"{code}-{line}\r\n" for line in lines[:-1]) + f"{code} {lines[-1]}\r\n"
    return out.encode("utf-8", "replace")


def format_address(address: Any) -> tuple[str, str]:
    """A socket address as ``(ip, "ip:port")``; IPv6 as ``[ip]:port``, as KumoMTA does."""
    host, port = str(address[0]), int(address[1])
    return host, join_host_port(host, port)


def trace_write(conn_meta: dict[str, Any], reply: bytes) -> None:
    """A reply as KumoMTA traces it: one ``Write`` per line, CRLF included."""
    for line in reply.decode("utf-8", "replace").splitlines(keepends=True):
        SERVER_TRACE.publish(conn_meta, "Write", line)


def _abort_if_open(ref: weakref.ref[asyncio.Transport]) -> None:
    """The end of a close's grace period: abort the transport if it still exists."""
    transport = ref()
    if transport is not None:
        transport.abort()


class _ServerTlsProtocol(sslproto.SSLProtocol):
    """asyncio's TLS layer with a 64 KiB read buffer instead of 256 KiB.

    Every TLS session — and every abandoned handshake until it is cut — holds one; a TLS
    record is at most 16 KiB, so 64 KiB still reads several per call.
    """

    max_size = 64 * 1024

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        # A session is freed by the cyclic collector, not by reference counting (asyncio's
        # stream protocol and writer refer to each other), and the server collects
        # seldom (kumocore.node.gctune): until then a closed session kept this buffer.
        # Nothing reads into it once the connection is gone.
        self._ssl_buffer = bytearray()
        self._ssl_buffer_view = memoryview(self._ssl_buffer)


class _NoHandler:
    """aiosmtpd wants a handler object; kumocore's commands are its own functions."""


class SmtpProtocol(SMTP):
    """aiosmtpd's protocol with kumocore's reply, read, timeout and TLS primitives.

    Subclasses override :meth:`_begin`, :meth:`_tls_started` and :meth:`_ended`.
    What is read and written is published to :data:`~kumocore.trace.bus.SERVER_TRACE`
    while someone traces (``kumocore trace-smtp-server``), with :attr:`conn_meta`.
    """

    #: The connection's meta (set by the subclass), sent with each trace event.
    conn_meta: ConnMeta

    def _init_aiosmtpd(
        self, *, hostname: str, banner: str, timeout: float, line_limit: int, max_size: int,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        # aiosmtpd's SMTP.__init__ runs inspect.getmembers over the class and the handler
        # on every connection, to build command and AUTH tables kumocore does not use;
        # that was a quarter of the cost of a short session. The attributes its inherited
        # machinery relies on are set here instead (tests/smtp/test_session_init.py checks
        # they cover everything aiosmtpd's own constructor sets).
        loop = asyncio.get_running_loop()
        self.loop = loop
        reader = asyncio.StreamReader(limit=line_limit, loop=loop)
        asyncio.StreamReaderProtocol.__init__(
            self, reader, client_connected_cb=self._cb_client_connected, loop=loop)
        self.__ident__ = banner
        self.event_handler = _NoHandler()
        self.hostname = hostname
        self.data_size_limit = max_size
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.tls_context = tls_context
        self.require_starttls = False
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._proxy_timeout = None
        self._auth_require_tls = True
        self._auth_required = False
        self._authenticator = None
        self._auth_callback = None
        self._auth_methods = {}
        self._handle_hooks = {}
        self._smtp_methods = {}
        self._ehlo_hook_ver = None
        self._enforce_call_limit = False
        self.closing = False
        self.tls_active = False
        self._waiting = False  # True while waiting for the client (not for the policy)
        self._last_activity = 0.0
        self._released = False
        self.tls_handshake_timeout = 30.0

    # ------------------------------------------------------------------ connection
    def _begin(self, transport: asyncio.BaseTransport) -> None:
        """A client connected (before aiosmtpd's own setup)."""

    def _tls_started(self, transport: asyncio.BaseTransport) -> None:
        """The STARTTLS handshake completed."""
        self.tls_active = True

    def _ended(self) -> None:
        """The connection is gone (called once, from :meth:`release`)."""

    def release(self) -> None:
        """Forget this connection: stop its timer, drop its TLS layer, run :meth:`_ended`.

        Called when the connection is lost *and* when the command loop ends, whichever
        comes first: after a STARTTLS whose handshake failed, asyncio's TLS layer never
        passes ``connection_lost`` on to us, so the loop's end is the only exit we see.
        """
        if self._released:
            return
        self._released = True
        self.closing = True
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()  # kept: aiosmtpd's connection_lost asserts it
        self._tls_protocol = None
        self._ended()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        upgrading = self.transport is not None and self._original_transport is not None
        if not upgrading:
            self._begin(transport)
        super().connection_made(transport)
        if upgrading:
            self._tls_started(transport)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.release()

    def eof_received(self) -> bool | None:
        if SERVER_TRACE.active:
            SERVER_TRACE.diagnostic(self.conn_meta, "ERROR", "Peer Disconnected")
        # aiosmtpd cancels the command loop at EOF, dropping commands still buffered
        # (a client may pipeline "QUIT" and half-close). Let the loop finish them instead:
        # the reader reports the EOF once they are consumed.
        keep_open = asyncio.StreamReaderProtocol.eof_received(self)
        return False if self.tls_active else keep_open

    def data_received(self, data: bytes) -> None:
        self._last_activity = self.loop.time()
        if SERVER_TRACE.active:  # as KumoMTA: each read as it came, DATA chunks too
            SERVER_TRACE.publish(self.conn_meta, "Read", data)
        super().data_received(data)

    # ------------------------------------------------------------------ timeouts
    # aiosmtpd re-arms a timer on every command; kumocore stamps activity instead (cheaper
    # with pipelining, and it also covers a slow DATA) and only times out a client that
    # we are waiting for, never one waiting for a slow policy.
    def _reset_timeout(self, duration: float | None = None) -> None:
        self._last_activity = self.loop.time()
        if self._timeout_handle is None:
            self._timeout_handle = self.loop.call_later(
                duration or self._timeout_duration, self._timeout_cb)

    def _timeout_cb(self) -> None:
        if self._released:
            return
        remaining = self._last_activity + self._timeout_duration - self.loop.time()
        if remaining > 0 or not self._waiting:
            delay = remaining if remaining > 0 else self._timeout_duration
            self._timeout_handle = self.loop.call_later(delay, self._timeout_cb)
            return
        log.info("smtp client idle too long", peer=self.session and self.session.peer)
        self.abort_with(421, f"4.3.2 {self.hostname} idle too long")

    def abort_with(self, code: int, text: str) -> None:
        """Write a last reply and close, without waiting (from callbacks)."""
        # Duck-typed: uvloop's transports are not asyncio.WriteTransport subclasses.
        transport = cast(asyncio.Transport | None, self.transport)
        if transport is not None and not transport.is_closing():
            reply = format_reply(code, text)
            if SERVER_TRACE.active:
                trace_write(self.conn_meta, reply)
            transport.write(reply)
            self.close_transport()
        self.closing = True

    # ------------------------------------------------------------------ I/O
    async def reply(self, code: int, text: str, *, close: bool = False) -> None:
        """Send one reply; ``close`` ends the connection once it is written."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self.closing = True
            return
        writer = self._writer
        reply = format_reply(code, text)
        if SERVER_TRACE.active:
            trace_write(self.conn_meta, reply)
        writer.write(reply)
        if close:
            self.closing = True
            self.close_transport()  # flushes the reply first
            return
        if not drain_needed(writer):
            return
        # Waiting for the client to read counts as waiting for the client: a client that
        # never reads its replies meets client_timeout and max_session_duration.
        self._waiting = True
        try:
            await writer.drain()
        finally:
            self._waiting = False

    def close_transport(self) -> None:
        """Close after the pending replies, but abort if they are not taken within
        :data:`CLOSE_GRACE` seconds."""
        transport = cast(asyncio.Transport | None, self.transport)
        if transport is None or transport.is_closing():
            return
        transport.close()
        # The timer holds the transport weakly. While the socket is open (still
        # flushing), the event loop keeps it alive; once it is closed nothing must: the
        # bound ``transport.abort`` kept every closed TLS connection's TLS layer (a 64 KiB
        # read buffer, OpenSSL's state) for CLOSE_GRACE seconds: a flood of ~400
        # STARTTLS handshakes a second held ~2,000 of them, +150 MiB of RSS that the
        # allocator then kept (tests/reliability/test_sec_smtp_adversary.py).
        self.loop.call_later(CLOSE_GRACE, _abort_if_open, weakref.ref(transport))

    async def read_line(self, limit: int) -> bytes | None:
        """One CRLF-terminated line (CRLF included); None if it was over ``limit``."""
        reader = self._reader
        reader._limit = limit  # type: ignore[attr-defined]
        self._waiting = True
        self._last_activity = self.loop.time()
        try:
            return await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            await self._skip_line(exc.consumed)
            return None
        finally:
            self._waiting = False

    async def _skip_line(self, consumed: int) -> None:
        # Discard the rest of an over-long line without buffering it.
        reader = self._reader
        while True:
            await reader.readexactly(consumed)
            try:
                await reader.readuntil(b"\r\n")
                return
            except asyncio.LimitOverrunError as exc:
                consumed = exc.consumed

    async def read_data(
        self, max_size: int, budget: Budget | None = None, window: int | None = None
    ) -> Unstuffed | DataTooBig | DataOverBudget:
        """The DATA section, dot-unstuffed (see :mod:`kumocore.reception.smtp.data`)."""
        self._waiting = True
        self._last_activity = self.loop.time()
        try:
            return await read_message(self._reader, max_size, budget, window)
        finally:
            self._waiting = False

    async def start_tls(self, context: ssl.SSLContext | None = None) -> None:
        """Switch the connection to TLS after ``220 Ready to Start TLS`` was sent, with
        ``context`` (this connection's certificate) or else :attr:`tls_context`.

        The same steps as aiosmtpd's own STARTTLS: the TLS layer is inserted under this
        protocol, and when the handshake completes :meth:`connection_made` runs again, in
        which aiosmtpd drops any plaintext the client pipelined after STARTTLS.

        The handshake has a deadline (``tls_handshake_timeout``). When it fails or runs
        out, the connection is closed and the session released here: asyncio's TLS
        layer does not report the loss of a connection that never completed its
        handshake, so nothing else would.
        """
        context = context or self.tls_context
        assert context is not None and self.transport is not None
        waiter = self.loop.create_future()
        tls_protocol = _ServerTlsProtocol(
            self.loop, self, context, waiter, server_side=True,
            # typeshed says int; asyncio takes any number of seconds
            ssl_handshake_timeout=cast(int, self.tls_handshake_timeout))
        self._tls_protocol = tls_protocol
        self._original_transport = self.transport
        self._original_transport.set_protocol(tls_protocol)
        self.transport = tls_protocol._app_transport
        tls_protocol.connection_made(self._original_transport)
        self._waiting = True
        try:
            # SSLProtocol enforces the deadline itself; this one covers a waiter that
            # is never woken at all (the cost of a bug there would be a leaked session).
            async with asyncio.timeout(self.tls_handshake_timeout + 1.0):
                await waiter
        except Exception as exc:
            log.info("TLS handshake failed", peer=self.session and self.session.peer,
                     error=str(exc) or type(exc).__name__)
            cast(asyncio.Transport, self._original_transport).abort()
            self.release()
        finally:
            self._waiting = False
