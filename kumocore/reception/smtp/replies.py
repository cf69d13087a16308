"""The replies of one ESMTP session, and the 421 that ends it.

:class:`SessionReplies` sits between :class:`~.session_state.SessionState` and
:class:`kumocore.reception.smtp.session.EsmtpSession`. Every 4xx/5xx reply is logged as a
``Rejection`` record, as KumoMTA does (except its ``421 4.3.2`` load/shutdown replies;
:class:`~kumocore.reception.smtp.rejections.RejectionLog` bounds how many), and counts
against ``max_command_errors``; an accepted message forgives the counts. The policy's
``smtp_server_rewrite_response`` has the last word on what the client sees
(:mod:`kumocore.reception.smtp.rewrite`), and a policy's :class:`~kumocore.Rejection` is
turned into its reply. :meth:`SessionReplies.end_soon` ends the session with a 421, now
or after the command being answered.
"""

from __future__ import annotations

import structlog

from kumocore.errors import Rejection
from kumocore.reception.smtp.rewrite import rewrite_reply
from kumocore.reception.smtp.session_state import SessionState

log = structlog.get_logger("kumocore.reception.smtp")


class SessionReplies(SessionState):
    """How an ESMTP session answers; see the module docstring."""

    async def reply(
        self, code: int, text: str, *, close: bool = False, error: bool = True,
        logged: bool = True,
    ) -> None:
        """Send a reply; a 4xx/5xx that does not end the session counts as an error
        unless ``error`` is False, and is logged as a ``Rejection`` unless ``logged`` is
        False (a connection turned away at once for a limit, counted in
        ``total_connections_denied`` instead: a flood must not become as many records).
        The policy's ``smtp_server_rewrite_response`` may change the reply the client
        sees (not what is logged or counted)."""
        if code >= 400:
            if logged and not (code == 421 and text.startswith("4.3.2 ")):
                self._log_rejection(code, text)
            if error and not close:
                self.errors += 1
        elif code == 250 and self.command[:4].upper() == "DATA":
            # A message was accepted: the client is making progress.
            self.errors = self.junk_commands = self.recipient_overshoot = 0
        if self._rewrite:  # smtp_server_rewrite_response (kumocore.reception.smtp.rewrite)
            code, text = await rewrite_reply(self, code, text)
            close = close or code == 421
        await super().reply(code, text, close=close)

    async def reject(self, rejection: Rejection, *, close: bool = False) -> None:
        """Send a policy's Rejection; ``close`` ends the session even without a 421."""
        if rejection.code < 400:
            # kumo.reject(250, ...) would tell the client "accepted" for a message that is
            # dropped: a policy bug, answered like any other policy error.
            log.error(
                "policy rejected with a non-error code", code=rejection.code, text=rejection.message
            )
            await self.technical_difficulties()
            return
        if rejection.follow_with_421:
            # kumo.disconnect(..., 'FollowWith421'): the policy's reply, then KumoMTA's
            # synthesized 421 (written as is: not rewritten, not logged) and the close.
            await self.reply(rejection.code, rejection.message, error=False)
            await super().reply(
                421, f"{self.hostname} disconnecting due to previous error", close=True
            )
            return
        await self.reply(rejection.code, rejection.message, close=close or rejection.disconnect)

    async def technical_difficulties(self) -> None:
        await self.reply(421, f"4.3.0 {self.hostname} technical difficulties", close=True)

    async def syntax_error(self, code: int, text: str) -> None:
        """A malformed or unknown command (an error like any refusal)."""
        await self.reply(code, text)

    def _log_rejection(self, code: int, text: str) -> None:
        if self.runtime.services is not None:  # a started node has a log dispatcher
            self.rejections.add(self, code, text)
        if (counts := self.server_counts) is not None:
            counts.rejected(self.accepted_on)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """The listener is closing: end now if idle, else after the current command."""
        self.end_soon(f"4.3.2 {self.hostname} shutting down")

    def end_soon(self, text: str) -> None:
        """End with ``421 text``: now if waiting for the client (even inside DATA, which
        then was never acknowledged), else once the current command is answered."""
        self._end_text = text
        if self._waiting:
            self.abort_with(421, text)
