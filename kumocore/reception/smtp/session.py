"""One ESMTP connection: its start and end, the greeting, the command loop.

:class:`EsmtpSession` runs on aiosmtpd's protocol (:mod:`kumocore.reception.smtp.protocol`) but with
kumocore's own command loop, because kumocore must

* answer with KumoMTA's replies, each with an enhanced status code (we advertise
  ENHANCEDSTATUSCODES, and aiosmtpd's built-in replies mostly lack one);
* run async policy events between parsing a command and answering it, turning a
  :class:`~kumocore.Rejection` into its reply and any other policy failure into
  ``421 4.3.0 <hostname> technical difficulties`` followed by a disconnect;
* read commands strictly CRLF-terminated, and DATA in large chunks
  (:mod:`kumocore.reception.smtp.data`) instead of one ``await`` per line.

The command handlers live in :mod:`kumocore.reception.smtp.commands` (and ``auth``/``receive``);
they are plain functions taking the session. The connection state is
:class:`~kumocore.reception.smtp.session_state.SessionState` and the replies (each 4xx/5xx
logged as a ``Rejection`` record) :class:`~kumocore.reception.smtp.replies.SessionReplies`,
the classes :class:`EsmtpSession` builds on; this module holds the connection's life: its
start and end, the greeting and the command loop. The listener hands the session its
command table, and the helpers the session calls (``limits``, ``proxied``,
``rejections``, ``rewrite``) type it structurally: imports go one way, from the handlers
to the session, never back.

What one client may cost is bounded (docs/reliability.md, "SMTP listener defences"):
every refused command counts against ``max_command_errors`` (Postfix's
smtpd_hard_error_limit), NOOP/RSET/EHLO and friends against ``max_junk_commands``
(smtpd_junk_command_limit), both forgiven when a message is accepted; a session ends
after ``max_session_duration``; and a pipelined backlog is answered
:data:`COMMANDS_PER_TURN` commands per event-loop turn so other sessions never wait
for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import structlog

from kumocore.errors import Rejection
from kumocore.mail.headers import HeaderParseError
from kumocore.reception.smtp.dynamic import apply_dynamic_parameters
from kumocore.reception.smtp.limits import admission_refusal, rate_refusal
from kumocore.reception.smtp.proxied import accept_proxy_header
from kumocore.reception.smtp.replies import SessionReplies
from kumocore.reception.smtp.session_state import ListenerView
from kumocore.trace.bus import SERVER_TRACE

if TYPE_CHECKING:

    from kumocore.reception.connection_rates import ConnectionRates
    from kumocore.reception.smtp.limits import AuthFailures, PeerCounts

log = structlog.get_logger("kumocore.reception.smtp")

#: A command handler: ``await handler(session, argument)``.
CommandHandler = Callable[["EsmtpSession", str], Awaitable[None]]

#: Commands answered before the session lets other sessions run (pipelined backlogs).
COMMANDS_PER_TURN = 8
#: Commands that make no progress towards a message (Postfix's junk commands, plus the
#: greetings, which a client needs once or twice per connection, and XCLIENT, which a
#: proxy sends once per client it speaks for: uncounted, a peer with ``allow_xclient``
#: had 100,000 pipelined ones answered, 35 s of the loop at 0.35 ms each).
JUNK_VERBS = frozenset({"NOOP", "RSET", "VRFY", "EXPN", "HELP", "EHLO", "HELO", "XCLIENT"})
#: "Too many recipients" refusals not counted as errors (RFC 5321 clients send the rest
#: in a new transaction); Postfix's smtpd_recipient_overshoot_limit.
RECIPIENT_OVERSHOOT_LIMIT = 1000


class Listener(ListenerView, Protocol):
    """The listener a session belongs to (:class:`kumocore.reception.smtp.server.EsmtpListener`,
    which creates sessions: typed structurally so that this module needs nothing of it):
    what the session state reads, and the command handlers."""

    @property
    def commands(self) -> Mapping[str, CommandHandler]:
        """The handler of each SMTP verb (:data:`kumocore.reception.smtp.commands.COMMANDS`)."""
    @property
    def sessions(self) -> set[EsmtpSession]: ...
    @property
    def peers(self) -> PeerCounts: ...
    @property
    def connection_rates(self) -> ConnectionRates: ...
    @property
    def auth_failures(self) -> AuthFailures: ...
    @property
    def closing(self) -> bool: ...


class EsmtpSession(SessionReplies):
    """One client connection: its start and end, the greeting and the command loop (its
    state and replies come from the base classes); see the module docstring."""

    #: The listener this session belongs to (what the state reads of it, and more).
    listener: Listener

    # ------------------------------------------------------------------ connection
    def _begin(self, transport: asyncio.BaseTransport) -> None:
        self.session_id = str(uuid.uuid4())
        self.set_addresses(transport.get_extra_info("peername"),
                           transport.get_extra_info("sockname"))
        self.accepted_on = self.local_address
        self.listener.sessions.add(self)
        self.listener.peers.add(self.peer_ip)
        if (counts := self.server_counts) is not None:
            counts.open += 1
            counts.total += 1
        self._session_timer = self.loop.call_later(
            self.config.max_session_duration, self.end_soon,
            f"4.4.2 {self.hostname} session time limit reached")
        if SERVER_TRACE.active:
            SERVER_TRACE.publish(self.conn_meta, "Connected")
    async def refresh_parameters(self) -> bool:
        """After XCLIENT moved the session: ask ``smtp_server_get_dynamic_parameters``
        again, as KumoMTA does; False when that refused the connection."""
        return not self._dynamic or await apply_dynamic_parameters(self)
    def _ended(self) -> None:
        if SERVER_TRACE.active:
            SERVER_TRACE.publish(self.conn_meta, "Closed")
        self.reset_transaction()  # a client gone mid-transaction ends it (timed)
        if self not in self.listener.sessions:
            return
        self.listener.sessions.discard(self)
        self.listener.peers.remove(self.peer_ip)
        if (counts := self.server_counts) is not None:
            counts.open -= 1
        if self._session_timer is not None:
            self._session_timer.cancel()
        self.rejections.summarize(self)
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
            self.close_transport()
            self.release()  # every way out of the loop frees the session's slot

    async def _turn_away(self, status: str, refusal: str, *, logged: bool = True) -> bool:
        """Refuse a new connection at once for a limit (``total_connections_denied``);
        False, for :meth:`_welcome` to return."""
        if (counts := self.server_counts) is not None:
            counts.denied += 1
        await self.reply(421, f"{status} {self.config.hostname} {refusal}. Try later",
                         close=True, logged=logged)  # fmt: skip
        return False

    async def _welcome(self) -> bool:
        if self.config.require_proxy_protocol and not await accept_proxy_header(self):
            return False
        hostname = self.config.hostname
        if (refusal := admission_refusal(self)) is not None:
            return await self._turn_away("4.3.2", refusal)
        if (refusal := rate_refusal(self)) is not None:  # as Postfix's rate limit: 4.7.0
            return await self._turn_away("4.7.0", refusal, logged=False)
        if self.listener.closing:
            await self.reply(421, f"4.3.2 {hostname} shutting down", close=True)
            return False
        if self._dynamic and not await apply_dynamic_parameters(self):
            return False
        try:
            await self.runtime.hooks.smtp_server_connection_accepted(self.conn_meta)
        except Rejection as rejection:
            if SERVER_TRACE.active:
                self._trace_callback("smtp_server_connection_accepted", str(rejection))
            # KumoMTA ends the session after any refusal at connect time.
            await self.reject(rejection, close=True)
            return False
        if SERVER_TRACE.active:
            self._trace_callback("smtp_server_connection_accepted", None)
        await self.reply(220, f"{self.config.hostname} {self.config.banner}")
        return True

    async def _command_loop(self) -> None:
        commands = self.listener.commands
        answered = 0
        while not self.closing:
            if self._end_text is not None:
                await self.reply(421, self._end_text, close=True)
                return
            if self.errors >= self.config.max_command_errors:
                await self.reply(421, f"4.7.0 {self.hostname} too many errors", close=True)
                return
            answered += 1
            if answered >= COMMANDS_PER_TURN:
                # A pipelined backlog is answered without the loop ever waiting for
                # I/O; let the other sessions have their turn.
                answered = 0
                await asyncio.sleep(0)
            raw = await self.read_line(self.config.line_length_hard_limit)
            self.command = ""
            if raw is None:
                if SERVER_TRACE.active:
                    SERVER_TRACE.diagnostic(self.conn_meta, "ERROR", "Line too long")
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
            handler = commands.get(verb)
            if handler is None:
                await self.syntax_error(500, "5.5.1 command not recognized")
                continue
            if verb in JUNK_VERBS:
                self.junk_commands += 1
                if self.junk_commands > self.config.max_junk_commands:
                    self.errors += 1  # as Postfix: answered, but counted as an error
            try:
                await handler(self, arg.strip(" "))
            except Rejection as rejection:
                await self.reject(rejection)
            except Exception as exc:
                # A policy that reads the headers of a message whose header block does
                # not parse: the sender's fault, and retrying will not fix it, so a
                # permanent refusal (docs/reception.md) instead of 421 for ever.
                unparsable = _header_parse_error(exc)
                if unparsable is None:
                    raise
                await self.reply(550, f"5.6.0 message headers cannot be parsed: {unparsable}")

    def _trace_callback(self, name: str, error: str | None) -> None:
        """A policy event's outcome, as KumoMTA traces it (``result`` null: these
        events return nothing)."""
        SERVER_TRACE.publish(self.conn_meta, "Callback",
                             {"name": name, "result": None, "error": error})


def _header_parse_error(exc: BaseException) -> HeaderParseError | None:
    """The HeaderParseError behind ``exc`` (policy errors wrap it as their cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, HeaderParseError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
