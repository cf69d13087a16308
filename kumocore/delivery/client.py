"""The outbound SMTP client: one connection to one MX address, reused for many messages.

Written on asyncio streams rather than aiosmtplib because bulk delivery wants client-side
PIPELINING (MAIL, RCPT and DATA in one round trip), which aiosmtplib does not do. Message
bodies are re-canonicalised to CRLF and dot-stuffed here, so kumocore never emits an SMTP
smuggling payload whatever it received.

Nothing the MX does can make this client raise: every failure — a timeout, a reset, a
TLS error, an over-long, endless or malformed reply, even an unexpected exception — ends
the connection (aborted, so a peer that stops reading cannot keep the socket) and becomes
a 4xx :class:`Response`: from :meth:`SmtpClientConnection.send` as its result, from
:func:`open_connection` as a :class:`ConnectFailure`. The queue turns that into a
TransientFailure with backoff.

:class:`SmtpClientConnection` holds the transactions; it builds on the connection's state
and read/write primitives (:class:`~kumocore.delivery.client_io.SessionIo`) and its
set-up: banner, EHLO, STARTTLS with DANE, AUTH
(:class:`~kumocore.delivery.client_setup.SessionSetup`). The failures and the responses
that stand for them are in :mod:`kumocore.delivery.client_failure`; the transactions of
a message with several recipients in :mod:`kumocore.delivery.client_batch` (a base
class: :meth:`SmtpClientConnection.send_batch`), the envelope steps both kinds share
(RSET, the lone dot) in :mod:`kumocore.delivery.client_envelope`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kumocore.delivery.client_batch import BatchTransactions
from kumocore.delivery.client_failure import ConnectFailure, failure_reason
from kumocore.delivery.client_io import path_timeout
from kumocore.delivery.dot_stuffing import dot_stuffed_in_slices
from kumocore.delivery.eightbit import mail_parameters
from kumocore.delivery.proxy import Progress, open_stream, route_for_source, timed_out
from kumocore.delivery.source_failure import classify, counted_as
from kumocore.delivery.unix_socket import open_unix_stream
from kumocore.delivery.wire import MAX_REPLY_LINE, expect_reply, refusal
from kumocore.dns.unix_path import is_unix_path
from kumocore.mail.internal_responses import send_failed
from kumocore.mail.response import Response
from kumocore.trace.bus import CLIENT_TRACE
from kumocore.trace.events import ClientTracer

if TYPE_CHECKING:
    from kumocore.config.egress import EgressPathConfig, EgressSource
    from kumocore.delivery.dane import DanePolicy


class SmtpClientConnection(BatchTransactions):
    """An open, greeted SMTP session ready for transactions."""

    # ---------------------------------------------------------------- transactions
    async def send(
        self, sender: str, recipient: str, data: bytes, *, crlf_clean: bool = False,
        head: bytes = b"", no_dot_lines: bool = False,
    ) -> Response:
        """Run one transaction; the reply that decided it (never raises).

        ``crlf_clean``: every CR and LF in ``data`` is known to be part of a CRLF pair
        (:attr:`kumocore.mail.message.Message.crlf_clean`); the same bytes are sent, cheaper.
        ``head``: bytes sent in front of ``data`` (a message's own header lines before a
        body shared with other recipients, so that they need not be joined first; see
        :func:`kumocore.delivery.dot_stuffing.dot_stuffed`). ``no_dot_lines``: no line of ``data``
        after its first is known to start with a full stop
        (:attr:`kumocore.mail.body.SharedBody.no_dot_lines`): it is not searched again.

        A failure on the wire ends the session (:attr:`closed`, :attr:`failure` set) and
        is returned as a 4xx reply. So does a reply the command cannot have (``250`` to
        ``DATA``, a reply left over from an earlier command): the session is out of step
        with the MX, and the body is never sent into it (:func:`~.wire.expect_reply`). A
        ``421``, a ``3xx`` to the dot and more than one reply to it end the session too.
        A message the MX cannot take for its 8-bit content is refused before anything is
        sent (:mod:`kumocore.delivery.eightbit`).
        """
        if self.closed:
            return send_failed("connection already closed", "MAIL FROM")
        try:
            parameters = mail_parameters(
                self.extensions, sender=sender, recipient=recipient, head=head, data=data,
                ignore_8bit_checks=bool(getattr(self.path, "ignore_8bit_checks", False)))
            if isinstance(parameters, Response):
                return parameters  # nothing was sent: the session stays as it was
            rset, self._rset_next = self._rset_next, True  # until it turns out well
            pipelined = ("PIPELINING" in self.extensions
                         and bool(getattr(self.path, "enable_pipelining", True)))
            if pipelined:
                reply = await self._pipelined_envelope(sender, recipient, parameters, rset)
            else:
                reply = await self._serial_envelope(sender, recipient, parameters, rset)
            if reply.command == "RSET":
                # As KumoMTA does, the message gets the MX's reply to RSET as it came
                # (a 5xx bounces it). KumoMTA keeps the session; kumocore keeps it only
                # when nothing followed the RSET: pipelined MAIL/RCPT/DATA may have
                # opened a transaction (or a DATA phase) it cannot safely close.
                if pipelined or reply.code == 421:
                    self.abort()
                return reply
            if reply.code != 354:
                if reply.code == 421:  # the MX is closing the session (RFC 5321 3.8)
                    self.abort()
                else:
                    await self._reset()
                return reply
            timeout = path_timeout(self.path, "data_dot_timeout", 300)
            self.replies.command = "."
            # Body and terminator in one writev (uvloop), without joining them first.
            pieces = await dot_stuffed_in_slices(data, crlf_clean=crlf_clean, head=head,
                                                 no_dot_lines=no_dot_lines)
            self.writer.writelines(pieces)
            if CLIENT_TRACE.active:  # as KumoMTA: the whole payload, as sent
                self.tracer.write(b"".join(pieces))
            await self._drain(timeout, None)
            final = await self.replies.read(".", timeout)
            self.deliveries += 1
            if final.code == 421 or 300 <= final.code < 400 or self.replies.buffered():
                # 421: the MX is closing the session (RFC 5321 3.8). A 3xx is no final
                # reply, and a second reply to the dot would be read by the next
                # transaction as its own: either way this session cannot go on.
                self.abort()
            elif final.is_success:
                self._rset_next = bool(getattr(self.path, "enable_rset", True))
            return final
        except Exception as exc:  # every way a hostile MX can fail us: see the module doc
            return self._lost(exc)

    async def _pipelined_envelope(
        self, sender: str, recipient: str, parameters: str, rset: bool
    ) -> Response:
        reset = await self._write_pipelined(
            [f"MAIL FROM:<{sender}>{parameters}", f"RCPT TO:<{recipient}>", "DATA"], rset)
        if reset is not None:
            return reset  # the connection is dropped: the pipelined replies do not matter
        mail = await self.replies.read(
            "MAIL FROM", path_timeout(self.path, "mail_from_timeout", 300))
        if mail.code == 421:
            return mail  # the MX is closing: the other replies will never come
        rcpt = await self.replies.read("RCPT TO", path_timeout(self.path, "rcpt_to_timeout", 300))
        if rcpt.code == 421:
            return rcpt
        data = await self.replies.read("DATA", path_timeout(self.path, "data_timeout", 300))
        refused = refusal(mail, "MAIL FROM") or refusal(rcpt, "RCPT TO")
        data = expect_reply(data, "DATA", 354)
        if refused is None:
            return data
        if data.code == 354:
            await self._end_empty_data()
        return refused

    async def _serial_envelope(
        self, sender: str, recipient: str, parameters: str, rset: bool
    ) -> Response:
        reset = await self._rset_alone(rset)
        if reset is not None:
            return reset
        mail = await self._command(f"MAIL FROM:<{sender}>{parameters}", "MAIL FROM",
                                   path_timeout(self.path, "mail_from_timeout", 300))
        refused = refusal(mail, "MAIL FROM")
        if refused is not None:
            return refused
        rcpt = await self._command(
            f"RCPT TO:<{recipient}>", "RCPT TO", path_timeout(self.path, "rcpt_to_timeout", 300)
        )
        refused = refusal(rcpt, "RCPT TO")
        if refused is not None:
            return refused
        data = await self._command("DATA", "DATA", path_timeout(self.path, "data_timeout", 300))
        return expect_reply(data, "DATA", 354)

    async def close(self) -> None:
        """QUIT and close (bounded: a peer that does not cooperate is aborted)."""
        self.replies.close()
        try:
            if not self.closed:
                self.closed = True
                self._write(b"QUIT\r\n")
                await asyncio.wait_for(self.writer.drain(), 2)
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except Exception:  # the socket must go whatever the peer does
            self.writer.transport.abort()
        except BaseException:  # a cancel (an aborted connection) too, and goes on
            self.writer.transport.abort()
            raise
        finally:
            if CLIENT_TRACE.active:
                self.tracer.close()


async def open_connection(
    *,
    mx_host: str,
    address: str,
    port: int,
    source_address: str | None,
    ehlo_domain: str,
    path: EgressPathConfig,
    tls_mode: str | None = None,
    egress_source: EgressSource | None = None,
    dane: DanePolicy | None = None,
    tracer: ClientTracer | None = None,
) -> SmtpClientConnection:
    """Connect (from ``source_address``, or through the source's proxy), read the banner,
    EHLO, maybe STARTTLS (per ``tls_mode``, default the path's ``enable_tls``; with
    ``dane``'s TLSA records, the certificate must match one of them)."""
    route, progress = None, Progress()
    timeout = path_timeout(path, "connect_timeout", 60)
    try:
        # A small stream limit: a reply line longer than MAX_REPLY_LINE is refused
        # anyway, so the reader never needs to buffer much more than one.
        if is_unix_path(address):  # an mx_list socket path: no source, no proxy
            opening = open_unix_stream(address, limit=4 * MAX_REPLY_LINE)
        else:
            route = route_for_source(egress_source, source_address)
            opening = open_stream(route, address, port, limit=4 * MAX_REPLY_LINE,
                                  progress=progress)  # fmt: skip
        reader, writer, origin = await asyncio.wait_for(opening, timeout)
    except Exception as exc:
        detail = str(exc)[:200] or type(exc).__name__
        if isinstance(exc, TimeoutError) and not str(exc):  # asyncio.wait_for: say what
            detail = timed_out(route, progress, address, port, timeout)
        if CLIENT_TRACE.active and tracer is not None:
            where = address if is_unix_path(address) else f"{mx_host} [{address}]:{port}"
            tracer.diagnostic("ERROR", f"connection to {where} failed: {detail}")
        raise ConnectFailure(
            Response.parse(451, f"4.4.1 connection failed: {detail}"),
            reason=f"connection failed: {detail}",
            source_failure=None if route is None else classify(exc, route, progress),
            counted_as=None if route is None else counted_as(exc, route, progress),
        ) from exc
    conn = SmtpClientConnection(reader, writer, mx_host, address, path, tls_mode, dane, tracer)
    conn.source_address = origin
    if CLIENT_TRACE.active:
        conn.tracer.connected(mx_host, address, (origin or {}).get("address"))
    try:
        await conn.greet(ehlo_domain)
    except ConnectFailure:
        await conn.close()  # QUIT after a refusal; nothing more after a broken session
        raise
    except Exception as exc:  # timeouts, resets, bad replies: see the module doc
        failure = conn._lost(exc)
        await conn.close()
        raise ConnectFailure(failure, reason=failure_reason(
            exc, conn.replies.command, conn.replies.timeout)) from exc
    except asyncio.CancelledError:  # shutdown (system_shutdown_timeout) during the greeting
        conn.abort()  # the socket must not outlive the task that owned it
        raise
    return conn
