"""A transaction for several recipients of one message (a batch): one ``MAIL FROM``, one
``RCPT TO`` per recipient, and ``DATA`` only when at least one of them was accepted.

As KumoMTA's ``send_mail_multi_recip``: the envelope is pipelined in one write when the
MX offers PIPELINING (and the path's ``enable_pipelining`` allows it), sent command by
command otherwise. When every ``RCPT TO`` is refused no body is sent: a pipelined
``DATA`` the MX took anyway (``354``, RFC 2920 3.1) is closed with a lone dot, and the
transaction is reset (``RSET``), so the session goes on with the next message.

The answer is one :class:`Response` per recipient, in the order given: a recipient
whose ``RCPT TO`` was refused keeps that refusal; an accepted one gets the reply that
decided the transaction (the final reply to the dot, or the refusal of ``DATA``); a
reply about the whole transaction (the session is closed, ``RSET`` or ``MAIL FROM``
refused, a ``421``, a failure on the wire) is every recipient's. KumoMTA gives a
refused ``DATA`` or dot reply to every recipient, even those refused at ``RCPT``;
kumocore keeps their own refusal, which says more about them. Over LMTP
(``use_lmtp``) each accepted recipient gets its own reply after the dot (RFC 2033 4.2);
KumoMTA's client reads only the first. A session lost part way through those replies
fails only the recipients whose reply never came: the others' replies stand.

Like :meth:`~kumocore.delivery.client.SmtpClientConnection.send` this never raises: a
failure on the wire ends the session and becomes every recipient's 4xx reply; so does
a reply received that no command asked for (one too many would shift every later reply
onto the next command, and one recipient's refusal onto another). A message
with one recipient never comes here (that path is the benchmark's hot path).
:class:`BatchTransactions` is a base of ``SmtpClientConnection``, between it and the
envelope's shared steps (:class:`~kumocore.delivery.client_envelope.EnvelopeSteps`).
"""

from __future__ import annotations

from collections.abc import Sequence

from kumocore.delivery.client_envelope import EnvelopeSteps
from kumocore.delivery.client_io import path_timeout
from kumocore.delivery.dot_stuffing import dot_stuffed_in_slices
from kumocore.delivery.eightbit import mail_parameters
from kumocore.delivery.wire import ReplyError, expect_reply, refusal
from kumocore.mail.internal_responses import send_failed
from kumocore.mail.response import Response
from kumocore.trace.bus import CLIENT_TRACE

#: The envelope's outcome: a reply about the whole transaction, or the replies to the
#: RCPTs with the reply to DATA (None: DATA was not reached, no RCPT was accepted).
Envelope = Response | tuple[list[Response], Response | None]


class BatchTransactions(EnvelopeSteps):
    """Transactions for several recipients (see the module doc)."""

    async def send_batch(
        self, sender: str, recipients: Sequence[str], data: bytes, *,
        crlf_clean: bool = False, head: bytes = b"", no_dot_lines: bool = False,
    ) -> list[Response]:
        """Run one transaction for ``recipients``; one reply per recipient (see the
        module doc). The body arguments are those of ``SmtpClientConnection.send``."""
        count = len(recipients)
        if self.closed:
            return [send_failed("connection already closed", "MAIL FROM")] * count
        try:
            parameters = mail_parameters(
                self.extensions, sender=sender, recipient="".join(recipients), head=head,
                data=data,
                ignore_8bit_checks=bool(getattr(self.path, "ignore_8bit_checks", False)))
            if isinstance(parameters, Response):
                return [parameters] * count  # nothing was sent: the session stays as it was
            rset, self._rset_next = self._rset_next, True  # until it turns out well
            pipelined = ("PIPELINING" in self.extensions
                         and bool(getattr(self.path, "enable_pipelining", True)))
            if pipelined:
                envelope = await self._batch_pipelined(sender, recipients, parameters, rset)
            else:
                envelope = await self._batch_serial(sender, recipients, parameters, rset)
            if isinstance(envelope, Response):
                await self._after_refusal(envelope, pipelined)
                return [envelope] * count
            rcpts, data_reply = envelope
            if data_reply is None or data_reply.code != 354:
                if data_reply is not None and data_reply.code == 421:
                    self.abort()
                else:
                    await self._reset()
                return rcpts if data_reply is None else _decided(rcpts, data_reply)
            # LMTP (RFC 2033 4.2): a reply after the dot per accepted recipient, in order.
            replies = sum(rcpt.is_success for rcpt in rcpts) if self._lmtp() else 1
            finals = await self._batch_body(data, crlf_clean, head, no_dot_lines, replies)
            return _decided(rcpts, *finals)
        except Exception as exc:  # every way a hostile MX can fail us, as in send()
            return [self._lost(exc)] * count

    def _lmtp(self) -> bool:
        return bool(getattr(self.path, "use_lmtp", False))

    async def _after_refusal(self, reply: Response, pipelined: bool) -> None:
        """End a transaction refused as a whole, as ``send`` does for one recipient."""
        if reply.command == "RSET":
            if pipelined or reply.code == 421:
                self.abort()
        elif reply.code == 421:  # the MX is closing the session (RFC 5321 3.8)
            self.abort()
        else:
            await self._reset()

    async def _batch_body(
        self, data: bytes, crlf_clean: bool, head: bytes, no_dot_lines: bool, replies: int
    ) -> list[Response]:
        """After ``354``: the body and the dot; the ``replies`` final replies (as
        ``send``; more than one only over LMTP). After a ``421`` or a ``3xx`` the
        session cannot go on: that reply stands for the replies that will not come."""
        timeout = path_timeout(self.path, "data_dot_timeout", 300)
        self.replies.command = "."
        pieces = await dot_stuffed_in_slices(
            data, crlf_clean=crlf_clean, head=head, no_dot_lines=no_dot_lines)
        self.writer.writelines(pieces)
        if CLIENT_TRACE.active:
            self.tracer.write(b"".join(pieces))
        await self._drain(timeout, None)
        finals: list[Response] = []
        while len(finals) < replies:
            try:
                final = await self.replies.read(".", timeout)
            except Exception as exc:
                if not finals:
                    raise
                # LMTP: the replies read stand (those recipients are delivered or
                # refused); the session is lost only for those whose reply never came.
                finals += [self._lost(exc)] * (replies - len(finals))
                break
            finals.append(final)
            if final.code == 421 or 300 <= final.code < 400:
                finals += [final] * (replies - len(finals))
                self.abort()
                break
        self.deliveries += 1
        if self.closed:
            return finals
        if self.replies.buffered():
            self.abort()  # a reply too many would be read by the next transaction: see send()
        elif all(final.is_success for final in finals):
            self._rset_next = bool(getattr(self.path, "enable_rset", True))
        return finals

    async def _batch_pipelined(
        self, sender: str, recipients: Sequence[str], parameters: str, rset: bool
    ) -> Envelope:
        lines = [f"MAIL FROM:<{sender}>{parameters}"]
        lines += [f"RCPT TO:<{recipient}>" for recipient in recipients]
        lines.append("DATA")
        reset = await self._write_pipelined(lines, rset)
        if reset is not None:
            return reset
        mail = await self.replies.read(
            "MAIL FROM", path_timeout(self.path, "mail_from_timeout", 300))
        if mail.code == 421:
            return mail  # the MX is closing: the other replies will never come
        rcpt_timeout = path_timeout(self.path, "rcpt_to_timeout", 300)
        rcpts: list[Response] = []
        for _ in recipients:
            rcpt = await self.replies.read("RCPT TO", rcpt_timeout)
            if rcpt.code == 421:
                return rcpt
            refusal(rcpt, "RCPT TO")  # a 3xx: out of step (raises)
            rcpts.append(rcpt)
        data = expect_reply(
            await self.replies.read("DATA", path_timeout(self.path, "data_timeout", 300)),
            "DATA", 354)
        self._alone("DATA")
        refused = refusal(mail, "MAIL FROM")
        if refused is None and any(rcpt.is_success for rcpt in rcpts):
            return rcpts, data
        if data.code == 354:
            await self._end_empty_data()
        return refused if refused is not None else (rcpts, None)

    async def _batch_serial(
        self, sender: str, recipients: Sequence[str], parameters: str, rset: bool
    ) -> Envelope:
        reset = await self._rset_alone(rset)
        if reset is not None:
            return reset
        mail = await self._command(f"MAIL FROM:<{sender}>{parameters}", "MAIL FROM",
                                   path_timeout(self.path, "mail_from_timeout", 300))
        self._alone("MAIL FROM")
        refused = refusal(mail, "MAIL FROM")
        if refused is not None:
            return refused
        rcpt_timeout = path_timeout(self.path, "rcpt_to_timeout", 300)
        rcpts: list[Response] = []
        for recipient in recipients:
            rcpt = await self._command(f"RCPT TO:<{recipient}>", "RCPT TO", rcpt_timeout)
            self._alone("RCPT TO")
            if rcpt.code == 421:
                return rcpt
            refusal(rcpt, "RCPT TO")
            rcpts.append(rcpt)
        if not any(rcpt.is_success for rcpt in rcpts):
            return rcpts, None
        data = await self._command("DATA", "DATA", path_timeout(self.path, "data_timeout", 300))
        self._alone("DATA")
        return rcpts, expect_reply(data, "DATA", 354)

    def _alone(self, command: str) -> None:
        """Nothing may follow the reply to ``command`` before the client's next command
        (or, after DATA, its body): a reply too many would be read as the next
        command's, shifting every later one (a refusal of one RCPT read as another's,
        or as the refusal of DATA: recipients the MX accepted would bounce). Only bytes
        already received are seen; the session is lost (every recipient's 4xx)."""
        if self.replies.buffered():
            raise ReplyError(f"a reply nobody asked for came after the reply to {command}")


def _decided(rcpts: list[Response], *replies: Response) -> list[Response]:
    """Each refused recipient gets its refusal; the accepted ones ``replies``: one for
    all, or (LMTP) one each, in order."""
    if len(replies) == 1:
        return [replies[0] if rcpt.is_success else rcpt for rcpt in rcpts]
    given = iter(replies)
    return [next(given) if rcpt.is_success else rcpt for rcpt in rcpts]
