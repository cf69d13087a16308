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
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from typing import TYPE_CHECKING, Any

from kumocore.delivery import auth
from kumocore.delivery.eightbit import mail_parameters
from kumocore.delivery.proxy import open_stream, route_for_source
from kumocore.delivery.tls import SessionInfo, client_context, session_info, verifies
from kumocore.delivery.unix_socket import open_unix_stream
from kumocore.delivery.wire import (
    MAX_REPLY_LINE,
    ReplyError,
    ReplyReader,
    WriteTimeout,
    dot_stuffed,
    expect_reply,
    refusal,
)
from kumocore.dns.unix_path import is_unix_path
from kumocore.errors import ConfigError
from kumocore.mail.internal_responses import (
    PAYLOAD_TIMED_OUT,
    debug_duration,
    send_failed,
    send_timed_out,
    send_write_timed_out,
)
from kumocore.mail.response import Response
from kumocore.node.streams import drain_needed
from kumocore.trace.bus import CLIENT_TRACE
from kumocore.trace.events import ClientTracer

if TYPE_CHECKING:
    from kumocore.config.egress import EgressPathConfig, EgressSource
    from kumocore.delivery.dane import DanePolicy


class ConnectFailure(Exception):
    """The connection or its greeting/EHLO/STARTTLS failed; ``response`` says how.
    ``tls_broken``: the TLS handshake, or the EHLO after it, failed (for
    ``remember_broken_tls`` and ``opportunistic_tls_reconnect_on_failed_handshake``).
    ``reason``: the one-line account of this host's failure that goes into the
    connection-failure response (:func:`kumocore.mail.internal_responses.connect_failed`):
    the peer's reply as it came, or kumocore's own text without a made-up code."""

    def __init__(
        self, response: Response, *, tls_broken: bool = False, reason: str | None = None
    ) -> None:
        super().__init__(response.to_single_line())
        self.response = response
        self.tls_broken = tls_broken
        self.reason = reason if reason is not None else response.content

    @classmethod
    def refused(cls, reply: Response) -> ConnectFailure:
        """The peer refused the session with ``reply`` (to the banner, EHLO, STARTTLS)."""
        return cls(reply, reason=f"{reply.command} reply: {reply.to_single_line()}")


def _timeout(path: EgressPathConfig, name: str, default: float) -> float:
    value = getattr(path, name, None)
    return float(value) if value is not None else default


def failure_reason(exc: BaseException, command: str, timeout: float) -> str:
    """What went wrong when ``exc`` ended a session during ``command``, in words."""
    detail = str(exc)[:200]
    if isinstance(exc, WriteTimeout):
        return f"Timed Out after {debug_duration(exc.timeout)} writing {exc.commands or command}"
    if isinstance(exc, TimeoutError):
        return f"Timed Out waiting {debug_duration(timeout)} for response to {command}"
    if isinstance(exc, ReplyError):
        return f"protocol violation by the MX during {command}: {detail}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error during {command}: {detail}"
    if isinstance(exc, (OSError, EOFError)):
        return f"connection lost during {command}: {detail}"
    # a bug or an exception nobody foresaw: still only this attempt fails
    return f"client error during {command}: {type(exc).__name__}: {detail}"


def failure_response(
    exc: BaseException, command: str, *, site: str, peer: str, timeout: float
) -> Response:
    """The transient response that stands for ``exc`` ending a session during
    ``command`` (KumoMTA's: ``421 4.4.2`` for a timeout, else ``400`` without enhanced
    code, both ``KumoMTA internal: failed to send message ...``). A write that timed
    out is told apart as KumoMTA does: ``to write <commands>``, or for the body a
    ``400`` ``Timed Out sending message payload data``."""
    if isinstance(exc, WriteTimeout):
        if exc.commands is None:
            return PAYLOAD_TIMED_OUT
        return send_write_timed_out(site, peer, exc.timeout, exc.commands)
    if isinstance(exc, TimeoutError):
        return send_timed_out(site, peer, timeout, command)
    return send_failed(failure_reason(exc, command, timeout), command)


class SmtpClientConnection:
    """An open, greeted SMTP session ready for transactions."""

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
            {"address": f"{local[0]}:{local[1]}"} if local else None)
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
        self.failure = failure_response(exc, self.replies.command, site=self.site, peer=where,
                                        timeout=self.replies.timeout)
        if CLIENT_TRACE.active:  # why, then Closed (from abort), as KumoMTA traces it
            self.tracer.diagnostic("ERROR", self.failure.to_single_line())
        self.abort()
        return self.failure

    # ---------------------------------------------------------------- session set-up
    async def greet(self, ehlo_domain: str) -> None:
        banner = await self.replies.read("banner", _timeout(self.path, "banner_timeout", 60))
        if banner.code != 220:
            raise ConnectFailure.refused(banner)
        await self._ehlo(ehlo_domain)
        mode = self.tls_mode
        if mode != "Disabled" and "STARTTLS" in self.extensions:
            await self._starttls(mode, ehlo_domain)
        elif self.dane is not None:
            raise ConnectFailure(Response.parse(451, (
                f"4.7.4 DANE: {self.dane.base_name} has TLSA records, so TLS is required, "
                f"but {self.peer['name']} does not offer STARTTLS")))
        elif mode.startswith("Required"):
            raise ConnectFailure(Response.parse(451, (  # KumoMTA's words
                f"4.7.4 tls policy is {mode} but STARTTLS is not advertised by "
                f"{self.peer['name']} [{self.peer['addr']}]")))
        if getattr(self.path, "smtp_auth_plain_username", None):
            await self._auth_plain()
        if not self.in_step():
            # More replies than commands (an EHLO reply with a line after its last): the
            # first transaction would read them as its own.
            extra = self.replies.buffered()
            self.abort()
            raise ConnectFailure(Response.parse(421, (
                f"4.5.0 protocol violation by {self.peer['name']}: {extra} bytes of "
                f"replies nobody asked for after {self.replies.command}"),
                command=self.replies.command))

    def in_step(self) -> bool:
        """Whether the session can take a transaction: open, nothing received that no
        command asked for (stray replies, or a ``421`` the MX sent before hanging up
        while the session was idle) and not closed by the MX."""
        return not (self.closed or self.replies.buffered() or self.replies.reader.at_eof())

    async def _auth_plain(self) -> None:
        """AUTH PLAIN with the path's credential (see :mod:`kumocore.delivery.auth`)."""
        where = f"{self.peer['name']} [{self.peer['addr']}]"
        try:
            auth.precondition(self.path, self.tls, self.session.tls_verified, where)
            try:
                token = auth.plain_initial_response(self.path)
            except ConfigError as exc:  # the password's key source cannot be read
                raise auth.AuthRefused(Response.parse(451, f"4.7.0 {exc}")) from exc
            reply = await self._command(
                f"AUTH PLAIN {token}", "AUTH", _timeout(self.path, "auth_timeout", 60))
            if reply.code != 235:
                raise auth.failed(reply, str(self.path.smtp_auth_plain_username), where)
        except auth.AuthRefused as refused:
            raise ConnectFailure(refused.response) from refused

    async def _ehlo(self, ehlo_domain: str) -> None:
        # ``use_lmtp``: RFC 2033's LHLO in its place (after STARTTLS too), as KumoMTA
        # does; the rest of the session is the same with one recipient per transaction,
        # whose one reply after the dot is the LMTP server's reply for that recipient.
        verb = "LHLO" if getattr(self.path, "use_lmtp", False) else "EHLO"
        reply = await self._command(
            f"{verb} {ehlo_domain}", verb, _timeout(self.path, "ehlo_timeout", 300)
        )
        if reply.code != 250:
            raise ConnectFailure.refused(reply)
        self.extensions = self.replies.last_extensions

    async def _starttls(self, mode: str, ehlo_domain: str) -> None:
        reply = await self._command(
            "STARTTLS", "STARTTLS", _timeout(self.path, "starttls_timeout", 5)
        )
        if reply.code != 220:
            # In every mode, as KumoMTA's client: a peer that offered STARTTLS and then
            # refused it gets no mail in clear text (a refusal is not a failed handshake,
            # so it is not remembered as broken TLS either).
            raise ConnectFailure.refused(reply)
        self._refuse_injection("with")
        try:
            # With TLSA records the chain is checked against them after the handshake,
            # not against the public CAs.
            context = client_context(self.path, "RequiredInsecure" if self.dane else mode)
        except Exception as exc:  # our configuration (client certificate), not the peer
            self.abort()
            raise ConnectFailure(Response.parse(
                451, f"4.7.0 client TLS configuration cannot be used: {str(exc)[:200]}")) from exc
        try:
            await asyncio.wait_for(
                self.writer.start_tls(context, server_hostname=self.peer["name"]),
                _timeout(self.path, "starttls_timeout", 5),
            )
        except Exception as exc:
            self.abort()
            raise ConnectFailure(
                Response.parse(
                    421,
                    f"4.7.5 TLS handshake with {self.peer['name']} failed: "
                    f"{str(exc)[:200] or type(exc).__name__}",
                ),
                tls_broken=True,
            ) from exc
        # Plaintext that arrived before the handshake took over the socket sits in the
        # same buffer as what TLS decrypts: refuse it here too.
        self._refuse_injection("after")
        self.replies.reset()  # nothing read before the handshake may be trusted
        self.tls = True
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.session = session_info(ssl_object, verifies(mode))
            if self.dane is not None:
                self.session = self._check_dane(ssl_object)
        try:
            await self._ehlo(ehlo_domain)
        except ConnectFailure as failure:
            failure.tls_broken = True
            raise

    def _check_dane(self, ssl_object: Any) -> SessionInfo:
        """The session, authenticated by a TLSA record; else the connection is dropped
        before any SMTP command went over it (see :mod:`kumocore.delivery.dane_match`)."""
        from kumocore.delivery.dane_match import DaneMismatch, check_chain, peer_chain

        assert self.dane is not None
        try:
            cert, _record = check_chain(self.dane.records, peer_chain(ssl_object),
                                       self.peer["name"])
        except DaneMismatch as mismatch:
            self.abort()
            records = ", ".join(str(r) for r in self.dane.records)
            raise ConnectFailure(Response.parse(421, (
                f"4.7.5 DANE: no TLSA record of {self.dane.base_name} ({records}) matched "
                f"the certificate of {self.peer['name'].rstrip('.')} [{self.peer['addr']}]: "
                f"{mismatch}")[:900], command="STARTTLS")) from mismatch
        # As KumoMTA (OpenSSL's DANE authority): the subject of the matched certificate.
        subject = tuple(attribute.rfc4514_string() for attribute in cert.subject)
        return dataclasses.replace(
            self.session, tls_verified=True, tls_peer_subject_name=subject or None)

    def _refuse_injection(self, when: str) -> None:
        """CVE-2011-0411: bytes sent with or after ``220`` to STARTTLS are plaintext an
        on-path attacker may have added; never read them as replies over TLS."""
        extra = self.replies.buffered()
        if extra:
            self.abort()  # not one more byte on this connection, not even QUIT
            raise ConnectFailure(
                Response.parse(
                    421,
                    f"4.7.0 {self.peer['name']} sent {extra} bytes {when} its 220 "
                    "reply to STARTTLS (possible response injection); connection closed",
                    command="STARTTLS",
                )
            )

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
        :func:`kumocore.delivery.wire.dot_stuffed`). ``no_dot_lines``: no line of ``data``
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
            timeout = _timeout(self.path, "data_dot_timeout", 300)
            self.replies.command = "."
            # Body and terminator in one writev (uvloop), without joining them first.
            pieces = dot_stuffed(data, crlf_clean=crlf_clean, head=head,
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
        envelope = f"MAIL FROM:<{sender}>{parameters}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n"
        self._write((("RSET\r\n" if rset else "") + envelope).encode())
        self.replies.command = "RSET" if rset else "MAIL FROM"
        await self._drain(_timeout(self.path, "mail_from_timeout", 300),
                          ("RSET, " if rset else "") + "MAIL FROM, RCPT TO, DATA")
        reset = await self._read_rset() if rset else None
        if reset is not None:
            return reset  # the connection is dropped: the pipelined replies do not matter
        mail = await self.replies.read("MAIL FROM", _timeout(self.path, "mail_from_timeout", 300))
        if mail.code == 421:
            return mail  # the MX is closing: the other replies will never come
        rcpt = await self.replies.read("RCPT TO", _timeout(self.path, "rcpt_to_timeout", 300))
        if rcpt.code == 421:
            return rcpt
        data = await self.replies.read("DATA", _timeout(self.path, "data_timeout", 300))
        refused = refusal(mail, "MAIL FROM") or refusal(rcpt, "RCPT TO")
        data = expect_reply(data, "DATA", 354)
        if refused is None:
            return data
        if data.code == 354:
            # RFC 2920 3.1: the MX took DATA although the envelope failed; end that
            # (empty) message with a lone dot, never with commands it would read as data.
            self._write(b".\r\n")
            timeout = _timeout(self.path, "data_dot_timeout", 300)
            await self._drain(timeout, None)
            await self.replies.read(".", timeout)
        return refused

    async def _serial_envelope(
        self, sender: str, recipient: str, parameters: str, rset: bool
    ) -> Response:
        if rset:
            self._write(b"RSET\r\n")
            await self._drain(_timeout(self.path, "rset_timeout", 5), "RSET")
            reset = await self._read_rset()
            if reset is not None:
                return reset
        mail = await self._command(f"MAIL FROM:<{sender}>{parameters}", "MAIL FROM",
                                   _timeout(self.path, "mail_from_timeout", 300))
        refused = refusal(mail, "MAIL FROM")
        if refused is not None:
            return refused
        rcpt = await self._command(
            f"RCPT TO:<{recipient}>", "RCPT TO", _timeout(self.path, "rcpt_to_timeout", 300)
        )
        refused = refusal(rcpt, "RCPT TO")
        if refused is not None:
            return refused
        data = await self._command("DATA", "DATA", _timeout(self.path, "data_timeout", 300))
        return expect_reply(data, "DATA", 354)

    async def _read_rset(self) -> Response | None:
        """The RSET reply before a transaction: None when it is 250, else that reply (its
        ``command`` RSET), which becomes the message's response as KumoMTA makes it."""
        reply = await self.replies.read("RSET", _timeout(self.path, "rset_timeout", 5))
        return None if reply.code == 250 else reply

    async def _reset(self) -> None:
        """RSET after a refused envelope, at once (kumocore's choice: the next
        transaction, if any, then starts clean without one)."""
        try:
            reply = await self._command("RSET", "RSET", _timeout(self.path, "rset_timeout", 5))
        except Exception as exc:
            self._lost(exc)
            return
        if reply.code != 250:  # the session is not in a state we know: start afresh
            self.abort()
            return
        self._rset_next = False

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
    try:
        # A small stream limit: a reply line longer than MAX_REPLY_LINE is refused
        # anyway, so the reader never needs to buffer much more than one.
        if is_unix_path(address):  # an mx_list socket path: no source, no proxy
            opening = open_unix_stream(address, limit=4 * MAX_REPLY_LINE)
        else:
            route = route_for_source(egress_source, source_address)
            opening = open_stream(route, address, port, limit=4 * MAX_REPLY_LINE)
        reader, writer, origin = await asyncio.wait_for(
            opening, _timeout(path, "connect_timeout", 60))
    except Exception as exc:
        if CLIENT_TRACE.active and tracer is not None:
            where = address if is_unix_path(address) else f"{mx_host} [{address}]:{port}"
            tracer.diagnostic("ERROR", f"connection to {where} failed: "
                              f"{str(exc)[:200] or type(exc).__name__}")
        raise ConnectFailure(
            Response.parse(451, f"4.4.1 connection failed: {str(exc)[:200]}"),
            reason=f"connection failed: {str(exc)[:200] or type(exc).__name__}",
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
