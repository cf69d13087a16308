"""One SMTP connection of an egress path: connect, then send message after message.

A connection waits for the path's ``max_connection_rate``, connects
(:mod:`kumocore.queue.connect`), and sends up to ``max_deliveries_per_connection``
messages, each after the path's message rates admit it, waiting up to ``idle_timeout``
for the next one. Every attempt's response goes to the outcomes; nothing that raises
leaves a message outside both the ready queue and the scheduler.

A connection that fails backs the whole path off (:mod:`kumocore.queue.backoff`); a round
in which no host could be reached fails the message it was for, and only after
``consecutive_connection_failures_before_delay`` such rounds in a row the whole queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from kumocore.mail import internal_responses
from kumocore.mail.internal_responses import BULK_DELAY
from kumocore.mail.response import Response
from kumocore.queue.connect import ConnectionFailed, connect
from kumocore.queue.dispatchers import running
from kumocore.queue.path import EgressPath
from kumocore.queue.rewrite_status import rewrite_delivery_status

if TYPE_CHECKING:
    from kumocore.delivery.client import SmtpClientConnection
    from kumocore.mail.message import Message
    from kumocore.queue.dispatchers import Dispatcher
    from kumocore.queue.slots import Slot

log = structlog.get_logger("kumocore.egress")



class SmtpEgressPath(EgressPath):
    """An egress path whose connections are SMTP sessions to the site's MX hosts."""

    async def serve(self, slot: Slot, epoch: int) -> None:
        # The phases inspect-ready-q shows (KumoMTA's names); a rate phase only where a
        # rate is configured, so that it stands for a wait.
        dispatcher = running()
        if self.config.max_connection_rate is not None:
            dispatcher.enter_phase("ConnectionRateThrottled")
        if not self.messages or not await self.throttles.connection_rate(self.config):
            return
        dispatcher.enter_phase("AttemptingConnection")
        try:
            conn = await connect(self)
        except ConnectionFailed as failure:
            self._round_failed(failure.response, epoch)
            return
        self.connection_failures = 0
        try:
            await self._deliver_over(conn, slot, dispatcher)
        finally:
            dispatcher.enter_phase("Closing")
            await conn.close()
            if conn.failure is not None:
                self.backoff.failed(conn.failure, epoch)

    async def _deliver_over(
        self, conn: SmtpClientConnection, slot: Slot, dispatcher: Dispatcher
    ) -> None:
        idle = float(self.config.idle_timeout)
        delivered = 0
        while (delivered < self.config.max_deliveries_per_connection and not conn.closed
               and not self.suspended):
            dispatcher.enter_phase("Idle")
            message = await self.next_message(idle, slot)
            if message is None:
                return
            if not conn.in_step():
                # The MX spoke unasked or hung up while the session idled: the message
                # goes out on a new session, without an attempt spent on this one.
                self.messages.appendleft(message)
                conn.abort()
                return
            if not await self._deliver_one(conn, message, dispatcher):
                return  # the message rate is exhausted: hand the slot back
            if conn.failure is None:
                self.backoff.worked()
            delivered += 1
            await self.throttles.keep(slot)

    async def _deliver_one(
        self, conn: SmtpClientConnection, message: Message, dispatcher: Dispatcher
    ) -> bool:
        """Send ``message``; False when the message rate says not now.

        If anything raises before its outcome is recorded, or the rate refuses, the
        message goes back to the front of the queue.
        """
        handed = False
        config = self.config
        try:
            if config.max_message_rate is not None or config.additional_message_rate_throttles:
                dispatcher.enter_phase("MessageRateThrottled")
            if not await self.throttles.message_rate(config):
                return False
            dispatcher.enter_phase("DeliveringMessage", "send msg with 1 recip(s)")
            await self._send(conn, message)
            handed = True
            return True
        finally:
            if not handed:
                self.messages.appendleft(message)

    async def _send(self, conn: SmtpClientConnection, message: Message) -> None:
        """One attempt; its outcome is always handed to the outcomes (``conn.send``
        never raises: every wire failure comes back as a 4xx reply)."""
        shared = self.shared
        # A body shared by several recipients goes out behind this message's own header
        # lines as two pieces: ``message.data`` would join them, a body copy per recipient.
        body = message.shared
        head = message.head if body is not None else b""
        data: bytes | None = body.data if body is not None else message.data
        # Known CRLF-clean, and without dot lines, only as held in memory; a body
        # reloaded from the spool is not.
        clean = message.crlf_clean
        no_dot_lines = body is not None and body.no_dot_lines
        try:
            if not data:
                data, clean, head = await shared.load_data(message), False, b""
                no_dot_lines = False
        except Exception as exc:  # a spool read error: retry later, like any 4xx
            log.error("message body could not be read from the spool", id=message.id,
                      error=str(exc))
            response = internal_responses.deliver_error(f"spool read failed: {str(exc)[:200]}")
            shared.outcomes.handle(self, message, response, peer=None)
            return
        if data is None:  # undeliverable, but not to be silently dropped
            log.error("message body missing from spool; quarantined", id=message.id)
            await shared.quarantine(message)
            return
        response = await conn.send(str(message.sender), str(message.recipient), data,
                                   crlf_clean=clean, head=head, no_dot_lines=no_dot_lines)
        if not response.is_success:
            queue = shared.queue_of(message)
            queue_name = message.queue_name() if queue is None else queue.name
            response = await rewrite_delivery_status(shared.hooks, queue_name, message,
                                                     response)
        shared.outcomes.handle(
            self, message, response, peer=conn.peer, source_address=conn.source_address,
            session=conn.session,
        )

    def _round_failed(self, response: Response, epoch: int) -> None:
        """No host of the path took a connection (one exhausted round, as KumoMTA says).

        As in KumoMTA, the message the connection was opened for gets the failure, and
        the next round may start at once; once more than
        ``consecutive_connection_failures_before_delay`` rounds in a row failed, every
        message in the ready queue is delayed and the path backs off (and keeps backing
        off, longer each time, until a connection opens). So a dead MX costs at most that
        many back-to-back rounds — fewer when fewer messages are queued — not a
        reconnect loop. A permanent failure (every MX address prohibited: a mail loop)
        fails the whole queue at once.
        """
        if not response.is_transient:
            self.backoff.failed(response, epoch)
            self.fail_queued(response)
            return
        self.connection_failures += 1
        message = self.take()
        if message is not None:
            self.shared.outcomes.handle(self, message, response, peer=None)
        if self.connection_failures > self.config.consecutive_connection_failures_before_delay:
            self.backoff.failed(response, epoch)
            self.fail_queued(BULK_DELAY)
