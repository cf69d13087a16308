"""One SMTP session of an egress path: connect, then send message after message.

A session waits for the path's ``max_connection_rate``, connects
(:mod:`kumocore.queue.connect`), and sends up to ``max_deliveries_per_connection``
messages, each after the path's message rates admit it, waiting up to ``idle_timeout``
for the next one. When the MX ends its connection, the session goes on over another one
as the path's ``reconnect_strategy`` says (:mod:`kumocore.queue.reconnect`). Every
attempt's response goes to the outcomes; nothing that raises leaves a message outside
both the ready queue and the scheduler.

A connection that fails backs the whole path off (:mod:`kumocore.queue.backoff`); a round
in which no host could be reached fails the message it was for, and only after
``consecutive_connection_failures_before_delay`` such rounds in a row the whole queue.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import structlog

from kumocore.mail import internal_responses
from kumocore.mail.internal_responses import BULK_DELAY
from kumocore.mail.response import Response
from kumocore.queue.batch_groups import TRANSIENT, classify_too_many, kind_of
from kumocore.queue.batch_send import Body, send_batches
from kumocore.queue.connect import ConnectionFailed, connect
from kumocore.queue.dispatchers import running
from kumocore.queue.insert_context import SOURCE_SUSPENDED
from kumocore.queue.path import EgressPath
from kumocore.queue.reconnect import ConnectionPlan, retry_on_next_host
from kumocore.queue.rewrite_status import rewrite_delivery_status
from kumocore.trace.bus import CLIENT_TRACE
from kumocore.trace.events import ClientTracer

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
        if self.shared.source_health.suspended and self._reroute_if_suspended():
            return
        if self.config.max_connection_rate is not None:
            dispatcher.enter_phase("ConnectionRateThrottled")
        if not self.messages or not await self.throttles.connection_rate(self.config):
            return
        dispatcher.enter_phase("AttemptingConnection")
        plan = ConnectionPlan()
        # One trace for the whole session, under the id KumoMTA gives it: the
        # dispatcher's session_id, whatever number of connections the session opens.
        tracer = ClientTracer({"id": str(dispatcher.session_id)})
        conn = await self._connect(plan, epoch, tracer)
        delivered = 0  # KumoMTA counts max_deliveries_per_connection per session
        while conn is not None:
            lost = False
            try:
                delivered = await self._deliver_over(conn, slot, dispatcher, plan, delivered)
            finally:
                lost = conn.closed  # ended by the MX (or a failure), not by us
                dispatcher.enter_phase("Closing")
                await conn.close()
                if conn.failure is not None:
                    self.backoff.failed(conn.failure, epoch)
            if (not lost or delivered >= self.config.max_deliveries_per_connection
                    or not plan.after_loss(self.config.reconnect_strategy)):
                return
            epoch = self.backoff.epoch
            conn = await self._reconnect(plan, slot, dispatcher, epoch, tracer)

    async def _connect(
        self, plan: ConnectionPlan, epoch: int, tracer: ClientTracer
    ) -> SmtpClientConnection | None:
        """The session's next connection, from ``plan``; None when no address took it."""
        try:
            conn = await connect(self, plan, tracer)
        except ConnectionFailed as failure:
            self._round_failed(failure.response, epoch)
            return None
        self.connection_failures = 0
        return conn

    async def _reconnect(
        self, plan: ConnectionPlan, slot: Slot, dispatcher: Dispatcher, epoch: int,
        tracer: ClientTracer,
    ) -> SmtpClientConnection | None:
        """The connection after one the MX ended (see :mod:`kumocore.queue.reconnect`),
        as KumoMTA opens it: when a message waits for it (up to ``idle_timeout``), and
        (kumocore's bound) not before the path's backoff is over."""
        dispatcher.enter_phase("Idle")
        pause = self.backoff.until - time.monotonic()
        if pause > 0:
            dispatcher.waiting_until = self.backoff.until  # no stall for the watchdog
            await asyncio.sleep(pause)
        message = await self.next_message(float(self.config.idle_timeout), slot)
        if message is None:
            return None
        self.put_back([message])  # the connection's first message, or its failure's
        dispatcher.enter_phase("AttemptingConnection")
        return await self._connect(plan, epoch, tracer)

    async def _deliver_over(
        self, conn: SmtpClientConnection, slot: Slot, dispatcher: Dispatcher,
        plan: ConnectionPlan, delivered: int,
    ) -> int:
        """Send over ``conn`` until the session is done with it; the session's count of
        messages sent, ``delivered`` before."""
        idle = float(self.config.idle_timeout)
        while (delivered < self.config.max_deliveries_per_connection and not conn.closed
               and not self.suspended):
            dispatcher.enter_phase("Idle")
            message = await self.next_message(idle, slot)
            if message is None:
                return delivered
            if not conn.in_step():
                # The MX spoke unasked or hung up while the session idled: the message
                # goes out on another connection, without an attempt spent on this one.
                self.messages.appendleft(message)
                conn.abort()
                return delivered
            if not await self._deliver_one(conn, message, dispatcher, plan):
                return delivered  # the message rate is exhausted: hand the slot back
            if conn.failure is None:
                self.backoff.worked()
            delivered += 1
            await self.throttles.keep(slot)
        return delivered

    async def _deliver_one(
        self, conn: SmtpClientConnection, message: Message, dispatcher: Dispatcher,
        plan: ConnectionPlan,
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
            await self._send(conn, message, plan)
            handed = True
            return True
        finally:
            if not handed:
                self.put_back([message])

    async def _send(
        self, conn: SmtpClientConnection, message: Message, plan: ConnectionPlan
    ) -> None:
        """One attempt, timed as KumoMTA times a ``deliver_message`` call
        (``deliver_message_latency_rollup``, by protocol)."""
        started = time.perf_counter()
        try:
            await self._attempt(conn, message, plan)
        finally:
            self.shared.outcomes.deliver_latency.observe(
                self.key.protocol_kind, time.perf_counter() - started)

    async def _attempt(
        self, conn: SmtpClientConnection, message: Message, plan: ConnectionPlan
    ) -> None:
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
        if self.held_for_spool(message, self.key.name):
            return  # the spool became unhealthy since the message was taken (KumoMTA)
        if CLIENT_TRACE.active and getattr(conn, "tracer", None) is not None:
            conn.tracer.message(message)  # kumocore trace-smtp-client: MessageObtained
        if len(message.recipients) > 1:  # a batch; one recipient stays on the path below
            await send_batches(self, conn, message, plan,
                               Body(data, clean, head, no_dot_lines))
            return
        response = await conn.send(str(message.sender), str(message.recipient), data,
                                   crlf_clean=clean, head=head, no_dot_lines=no_dot_lines)
        kind = None
        if not response.is_success:
            queue = shared.queue_of(message)
            queue_name = message.queue_name() if queue is None else queue.name
            response = await rewrite_delivery_status(shared.hooks, queue_name, message,
                                                     response)
            # A bare 552 to RCPT TO is temporary unless the classifier names another
            # cause (QuotaIssues...): the batch's rule, for one recipient too (KumoMTA).
            kind = kind_of(response, await classify_too_many(
                response, shared.outcomes.journal.classify))
            config = self.config
            if (config.try_next_host_on_transport_error and kind == TRANSIENT
                    and retry_on_next_host(response)
                    and plan.retry_now(config.reconnect_strategy)):
                await self._retry_on_next_host(conn, message, response)
                return
        shared.outcomes.handle(
            self, message, response, peer=conn.peer, source_address=conn.source_address,
            session=conn.session, kind=kind,
        )

    async def _retry_on_next_host(
        self, conn: SmtpClientConnection, message: Message, response: Response
    ) -> None:
        """``try_next_host_on_transport_error``: as KumoMTA, log the attempt's
        ``TransientFailure`` without counting it, drop the connection and put the message
        first in line for the session's next one."""
        conn.abort()
        await self.shared.outcomes.transient_retried_now(
            self, message, response, peer=conn.peer, source_address=conn.source_address,
            session=conn.session)
        self.put_back([message])

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
            self.batch_memory.forget(message.id)  # a batch between transactions waits
            self.shared.outcomes.handle(self, message, response, peer=None)
        if self.shared.source_health.suspended and self._reroute_if_suspended():
            return
        if self.connection_failures > self.config.consecutive_connection_failures_before_delay:
            self.backoff.failed(response, epoch)
            self.fail_queued(BULK_DELAY)

    def _reroute_if_suspended(self) -> bool:
        """While the path's source is auto-suspended (:mod:`kumocore.queue.source_health`)
        its queued messages go back to their scheduled queues, to be routed around it, as
        KumoMTA's ready queue re-inserts them (``SourceIsUnhealthyAndSuspended``)."""
        give_back = self.shared.give_back
        if give_back is None or self.shared.source_health.remaining(self.source.name) is None:
            return False
        for message in self.drain():
            give_back(message, SOURCE_SUSPENDED)
        return True
