"""One ESMTP connection: its state, the greeting, the command loop, shutdown.

:class:`EsmtpSession` runs on aiosmtpd's protocol (:mod:`kumocore.smtp.protocol`) but with
kumocore's own command loop, because kumocore must

* answer with KumoMTA's replies, each with an enhanced status code (we advertise
  ENHANCEDSTATUSCODES, and aiosmtpd's built-in replies mostly lack one);
* run async policy events between parsing a command and answering it, turning a
  :class:`~kumocore.Rejection` into its reply and any other policy failure into
  ``421 4.3.0 <hostname> technical difficulties`` followed by a disconnect;
* read commands strictly CRLF-terminated, and DATA in large chunks
  (:mod:`kumocore.smtp.data`) instead of one ``await`` per line.

The command handlers live in :mod:`kumocore.smtp.commands` (and ``auth``/``receive``);
they are plain functions taking the session, which holds the connection state. Every
4xx/5xx reply is logged as a ``Rejection`` record, as KumoMTA does (except its ``421
4.3.2`` load/shutdown replies).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.errors import Rejection
from kumocore.smtp.protocol import SmtpProtocol, format_address
from kumocore.smtp.relay import DomainLookup
from kumocore.smtp.rewrite import rewrite_reply

if TYPE_CHECKING:
    from kumocore.address import EnvelopeAddress
    from kumocore.config import EsmtpListenerConfig
    from kumocore.smtp.server import EsmtpListener

log = structlog.get_logger("kumocore.smtp")

#: A command handler: ``await handler(session, argument)``.
CommandHandler = Callable[["EsmtpSession", str], Awaitable[None]]

#: Unknown or malformed commands tolerated before the connection is dropped.
MAX_BAD_COMMANDS = 10


@dataclass
class Transaction:
    """The envelope being built between MAIL FROM and the end of DATA."""

    sender: EnvelopeAddress
    recipients: list[EnvelopeAddress] = field(default_factory=list)


class EsmtpSession(SmtpProtocol):
    """State and command loop of one client connection; see the module docstring."""

    def __init__(self, listener: EsmtpListener) -> None:
        self.listener = listener
        self.runtime = listener.runtime
        self.config: EsmtpListenerConfig = listener.config
        self._init_aiosmtpd(
            hostname=self.config.hostname, banner=self.config.banner,
            timeout=self.config.client_timeout, line_limit=self.config.line_length_hard_limit,
            max_size=self.config.max_message_size, tls_context=listener.tls_context)
        self.conn_meta: dict[str, Any] = {}
        self.peer_ip = self.peer_address = self.local_ip = self.local_address = ""
        self.domains = DomainLookup(self.runtime.hooks, self.config, "", self.conn_meta)
        self.session_id = ""
        self.ehlo_domain: str | None = None
        self.esmtp = False
        self.authn_id: str | None = None
        self.txn: Transaction | None = None
        self.command = ""  # the command being answered, for Rejection records
        self.rcpt_count = 0  # recipients (= messages) accepted on this connection
        self.bad_commands = 0
        self.auth_failures = 0
        self._shutting_down = False
        # Known once the policy is loaded: asked per connection, not per reply or DATA.
        self._rewrite = self.runtime.hooks.implemented("smtp_server_rewrite_response")
        self.data_event = self.runtime.hooks.implemented("smtp_server_data")

    # ------------------------------------------------------------------ connection
    def _begin(self, transport: asyncio.BaseTransport) -> None:
        self.peer_ip, self.peer_address = format_address(transport.get_extra_info("peername"))
        self.local_ip, self.local_address = format_address(transport.get_extra_info("sockname"))
        # ``peer``/``via`` blocks may override options for this client or local address.
        self.config = self.listener.config.for_connection(self.peer_ip, self.local_ip)
        self.hostname = self.config.hostname
        self._timeout_duration = self.config.client_timeout
        self.session_id = str(uuid.uuid4())
        self.conn_meta.update({
            "reception_protocol": "ESMTP",
            "received_via": self.local_address,
            "received_from": self.peer_address,
            "hostname": self.config.hostname,
        })
        self.conn_meta.update(self.config.meta)
        self.domains = DomainLookup(
            self.runtime.hooks, self.config, self.local_address, self.conn_meta)
        self.listener.sessions.add(self)

    def _tls_started(self, transport: asyncio.BaseTransport) -> None:
        super()._tls_started(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            if cipher:
                self.conn_meta["tls_cipher"] = cipher[0]
            self.conn_meta["tls_protocol_version"] = ssl_object.version()
        # RFC 3207 4.2: forget everything the client said before the handshake.
        self.ehlo_domain = None
        self.esmtp = False
        self.txn = None
        self.conn_meta.pop("ehlo_domain", None)

    def _ended(self) -> None:
        self.listener.sessions.discard(self)

    # ------------------------------------------------------------------ replies
    async def reply(self, code: int, text: str, *, close: bool = False) -> None:
        if code >= 400 and not (code == 421 and text.startswith("4.3.2 ")):
            self._log_rejection(code, text)
        if self._rewrite:  # smtp_server_rewrite_response (kumocore.smtp.rewrite)
            code, text = await rewrite_reply(self, code, text)
            close = close or code == 421
        await super().reply(code, text, close=close)

    async def reject(self, rejection: Rejection, *, close: bool = False) -> None:
        """Send a policy's Rejection; ``close`` ends the session even without a 421."""
        if rejection.code < 400:
            # kumo.reject(250, ...) would tell the client "accepted" for a message that is
            # dropped: a policy bug, answered like any other policy error.
            log.error("policy rejected with a non-error code", code=rejection.code,
                      text=rejection.message)
            await self.technical_difficulties()
            return
        await self.reply(rejection.code, rejection.message, close=close or rejection.disconnect)

    async def technical_difficulties(self) -> None:
        await self.reply(421, f"4.3.0 {self.hostname} technical difficulties", close=True)

    async def syntax_error(self, code: int, text: str) -> None:
        """A malformed or unknown command; too many of them end the connection."""
        self.bad_commands += 1
        if self.bad_commands >= MAX_BAD_COMMANDS:
            await self.reply(421, f"4.7.0 {self.hostname} too many bad commands", close=True)
        else:
            await self.reply(code, text)

    def _log_rejection(self, code: int, text: str) -> None:
        if self.runtime.logs is not None:
            from kumocore.smtp.rejections import log_rejection

            log_rejection(self, code, text)

    # ------------------------------------------------------------------ the loop
    async def _handle_client(self) -> None:
        try:
            if await self._welcome():
                await self._command_loop()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:
            log.error("smtp session failed", peer=self.peer_address, error=str(exc))
            await self.technical_difficulties()
        finally:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()

    async def _welcome(self) -> bool:
        hostname = self.config.hostname
        if len(self.listener.sessions) > self.listener.config.max_connections:
            await self.reply(
                421, f"4.3.2 {hostname} too many concurrent sessions. Try later", close=True)
            return False
        if self.listener.closing:
            await self.reply(421, f"4.3.2 {hostname} shutting down", close=True)
            return False
        try:
            await self.runtime.hooks.smtp_server_connection_accepted(self.conn_meta)
        except Rejection as rejection:
            # KumoMTA ends the session after any refusal at connect time.
            await self.reject(rejection, close=True)
            return False
        await self.reply(220, f"{hostname} {self.config.banner}")
        return True

    async def _command_loop(self) -> None:
        from kumocore.smtp.commands import COMMANDS

        while not self.closing:
            if self._shutting_down:
                await self.reply(421, f"4.3.2 {self.hostname} shutting down", close=True)
                return
            raw = await self.read_line(self.config.line_length_hard_limit)
            self.command = ""
            if raw is None:
                await self.syntax_error(500, "5.2.3 line too long")
                continue
            body = raw[:-2]
            if b"\r" in body or b"\n" in body:
                await self.syntax_error(501, "5.5.2 bare CR or LF in command line")
                continue
            try:
                line = body.decode("utf-8")
            except UnicodeDecodeError:
                await self.syntax_error(500, "5.5.2 command line is not valid UTF-8")
                continue
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            # An AUTH line may carry credentials: only its mechanism is ever logged.
            self.command = " ".join(line.split()[:2]) if verb == "AUTH" else line
            handler = COMMANDS.get(verb)
            if handler is None:
                await self.syntax_error(500, "5.5.1 command not recognized")
                continue
            try:
                await handler(self, arg.strip(" "))
            except Rejection as rejection:
                await self.reject(rejection)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """The listener is closing: end now if idle, else after the current command."""
        self._shutting_down = True
        if self._waiting:
            self.abort_with(421, f"4.3.2 {self.hostname} shutting down")

    def reset_transaction(self) -> None:
        self.txn = None
