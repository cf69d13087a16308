"""What happens after an attempt: Delivery, TransientFailure, Bounce, Expiration.

Every outcome is logged with KumoMTA's record fields. A message leaves the spool only
after its final record (Delivery, Bounce, Expiration, AdminBounce) was written by every
log sink; a transient failure persists the new attempt count and due time first, so a
restart resumes the same schedule.

The outcomes see the queue manager only through narrow callbacks: ``retry(message, due)``
(persist, reschedule), ``finished(message, keep_spooled=)`` (leave queues and spool),
``requeue(message, response)`` (``requeue_message``) and ``record_of(message)`` (its one
record: scheduled queue, last transient response). The transient outcomes, which go back
to the scheduler, are the base class :class:`~kumocore.queue.retry_outcomes.RetryOutcomes`;
a batch's outcomes are :class:`~kumocore.queue.batch_outcomes.BatchOutcomes`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.logs.journal import Attempt
from kumocore.logs.record import RecordType
from kumocore.mail.response import Response
from kumocore.node.latency import LabelledHistograms
from kumocore.queue.batch_groups import DELIVERY, TRANSIENT, kind_of
from kumocore.queue.batch_outcomes import BatchOutcomes
from kumocore.queue.bounce_batches import BounceBatches
from kumocore.queue.dispatchers import current as current_dispatcher
from kumocore.queue.path_stats import OutcomeStats
from kumocore.queue.provider_counts import ProviderCounts
from kumocore.queue.retry_outcomes import RetryOutcomes, _path_name

if TYPE_CHECKING:
    from kumocore.delivery.tls import SessionInfo
    from kumocore.logs.dispatch import LogDispatcher, Ticket
    from kumocore.logs.journal import Journal, SourceAddress
    from kumocore.mail.message import Message
    from kumocore.queue.automation import Automation
    from kumocore.queue.egress import PathView
    from kumocore.queue.queued import Queued
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.status.responses import ResponseLog

log = structlog.get_logger("kumocore.outcomes")

#: How long a shutdown waits for the final records of finished messages to be written.
DRAIN_GRACE = 2.0

_COUNTER_OF = {"Bounce": "bounced", "AdminBounce": "admin_bounced", "Expiration": "expired"}


class Outcomes(BatchOutcomes, RetryOutcomes):
    """Records outcomes, updates the spool and reschedules."""

    def __init__(
        self,
        *,
        journal: Journal,
        logs: LogDispatcher,
        responses: ResponseLog,
        tsa: Automation | None,
        record_of: Callable[[Message], Queued | None],
        retry: Callable[[Message, float], Awaitable[None]],
        finished: Callable[..., Awaitable[None]],
        requeue: Callable[[Message, Response], Awaitable[bool]],
        let_go: Callable[[Message], None],
        unspool: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        #: Builds every record (kumocore.logs.journal); ``logs`` confirms they are written.
        self.journal, self.logs = journal, logs
        #: Recent refusals and bounce classes, for the status page (kumocore.status).
        self.responses = responses
        self.tsa = tsa  # traffic shaping automation (kumocore.tsa) sees every outcome
        self._record_of, self._retry, self._requeue = record_of, retry, requeue
        self._finished = finished  # finished(message, keep_spooled=False)
        self.counters = dict.fromkeys(
            ("delivered", "transient", "bounced", "expired", "admin_bounced"), 0)
        #: Attempts by provider, and by provider, source and pool (``/metrics``).
        self.provider_counts = ProviderCounts()
        #: Per-path outcome counts and last errors (queue tools).
        self.stats = OutcomeStats()
        #: How long each delivery attempt took, by protocol kind (``smtp_client``, ``lua``):
        #: KumoMTA's ``deliver_message_latency_rollup``. The paths observe it.
        self.deliver_latency = LabelledHistograms()
        self._tasks: set[asyncio.Task[None]] = set()
        # Set while draining at shutdown: after it, unwritten final records stop holding
        # up the shutdown (their messages stay spooled).
        self._give_up_at: float | None = None
        #: Admin bounces, logged and unspooled in batches by one task (``let_go``: drop a
        #: finished message from the queues; ``unspool``: remove a list from the spool).
        self.admin_bounces = BounceBatches(
            classify=journal.classify, record=self._admin_bounce_record,
            written=self._written, let_go=let_go, unspool=unspool, spawn=self._spawn)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every pending spool update has been written (at shutdown: a message
        whose final record cannot be written now stays spooled)."""
        loop = asyncio.get_running_loop()
        self._give_up_at = loop.time() + DRAIN_GRACE
        logs = self.logs
        # Records a working sink writes within the grace still unspool their message;
        # then the waiters are woken to find that they may give up.
        timer = loop.call_later(DRAIN_GRACE, logs.wake_waiters) if logs is not None else None
        try:
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            self._give_up_at = None
            if timer is not None:
                timer.cancel()

    def _giving_up(self) -> bool:
        logs = self.logs
        if logs is not None and logs.closing:
            return True
        return self._give_up_at is not None and (
            asyncio.get_running_loop().time() >= self._give_up_at)

    def handle(
        self,
        path: PathView | None,
        message: Message,
        response: Response,
        peer: dict[str, str] | None,
        source_address: SourceAddress = None,
        session: SessionInfo | None = None,
        kind: str | None = None,
    ) -> None:
        """Dispatch a response to the matching outcome (``session``: the protocol and TLS
        details of the attempt, for the record; ``kind``: the record it makes when the
        caller asked the classifier, :func:`~kumocore.queue.batch_groups.kind_of`)."""
        connection = current_dispatcher.get()  # counted for inspect-ready-q
        if kind is None:
            kind = kind_of(response)
        if kind == DELIVERY:
            if connection is not None:
                connection.delivered += 1
            self.delivered(path, message, response, peer, source_address, session=session)
        elif kind == TRANSIENT:
            if connection is not None:
                connection.transfailed += 1
            self.transient(path, message, response, peer, source_address, session=session)
        else:
            if connection is not None:
                connection.failed += 1
            self.bounce(path, message, response, peer, source_address, session=session)

    # ------------------------------------------------------------------ records
    def _record(
        self,
        kind: str,
        message: Message,
        response: Response,
        path: PathView | None,
        peer: dict[str, str] | None,
        source_address: SourceAddress,
        classification: str = "Uncategorized",
        session: SessionInfo | None = None,
        queue_site: bool | str = False,
        recipients: Sequence[str] | None = None,
    ) -> Ticket | None:
        """``recipients``: the part of a batch the record is about (default: all)."""
        from kumocore.status.responses import note_outcome

        # the status page
        note_outcome(self.responses, kind, path, response, classification)
        record = self._record_of(message)
        queue = record.queue if record is not None else None
        protocol = session.delivery_protocol if session is not None else None
        if protocol is None and path is not None:
            protocol = "ESMTP"
        site = path.key.name if path is not None else ""
        if queue_site:  # a record of the scheduled queue itself: its name, no pool
            site = queue_site if isinstance(queue_site, str) else queue.name if queue else ""
        else:
            self.provider_counts.count(
                kind, path, queue.pool_name if queue else "unspecified",
                len(recipients) if recipients is not None else 1)
        attempt = Attempt(
            queue=queue.name if queue else "",
            site=site,
            egress_pool=queue.pool_name if queue and not queue_site else None,
            egress_source=path.key.source if path is not None else None,
            provider_name=_provider(kind, path, queue),
            peer=peer,
            source_address=source_address,
            delivery_protocol=protocol,
            tls_cipher=session.tls_cipher if session else None,
            tls_protocol_version=session.tls_protocol_version if session else None,
            tls_peer_subject_name=session.tls_peer_subject_name if session else None,
        )
        tsa = self.tsa
        return self.journal.outcome(
            RecordType(kind), message, response, attempt, classification=classification,
            observe=tsa.observe if tsa is not None else None, recipients=recipients)

    # ------------------------------------------------------------------ final outcomes
    async def _finish(self, message: Message, *tickets: Ticket | None) -> None:
        """Forget a message once its final records (one, or one per distinct outcome of
        a batch) reached every log sink.

        Deleting first would open a window in which a crash loses the message from both
        the spool and the logs. If the sinks don't confirm in time, the spool record stays
        and the next start handles the message again (at-least-once).
        """
        logs = self.logs
        confirmed = True
        for ticket in tickets:
            if not ticket or logs is None:
                continue
            # A sink that cannot write (a full log disk) retries until it can: wait for it
            # as long as it takes. Only a shutdown ends the wait with the message spooled.
            # No timeout (a timer per waiting message would cost more than the wait); the
            # dispatcher logs every failed write, and drain() wakes us at shutdown.
            confirmed = await logs.written(
                ticket, None, give_up=self._giving_up)
            if not confirmed:
                log.warning("log record not written at shutdown; message stays spooled",
                            id=message.id)
                break
        await self._finished(message, keep_spooled=not confirmed)

    async def _written(self, ticket: Ticket) -> bool:
        """Wait until every sink has written ``ticket``'s record (as :meth:`_finish`
        does); False if the node stops first."""
        logs = self.logs
        return logs is None or await logs.written(ticket, None, give_up=self._giving_up)

    def delivered(
        self,
        path: PathView | None,
        message: Message,
        response: Response,
        peer: dict[str, str] | None,
        source_address: SourceAddress,
        session: SessionInfo | None = None,
        kind: str = "Delivery",
    ) -> None:
        """A success: log ``kind`` (``XferOut`` for a transfer), then forget."""
        self.counters["delivered"] += 1
        self.stats.record(_path_name(path), "delivered", response)
        ticket = self._record(
            kind, message, response, path, peer, source_address, session=session)
        self._spawn(self._finish(message, ticket))

    def bounce(
        self,
        path: PathView | None,
        message: Message,
        response: Response,
        peer: dict[str, str] | None,
        source_address: SourceAddress,
        kind: str = "Bounce",
        log_it: bool = True,
        session: SessionInfo | None = None,
        queue_site: bool | str = False,
    ) -> None:
        """A final failure (``Bounce``, ``AdminBounce`` or ``Expiration``): log, then forget
        (``queue_site``: as for :meth:`transient`)."""
        self.counters[_COUNTER_OF[kind]] += 1
        self.stats.record(_path_name(path), "failed", response)

        async def finish() -> None:
            ticket = None
            if log_it:
                classification = await self.journal.classify(response)
                ticket = self._record(
                    kind, message, response, path, peer, source_address, classification,
                    session=session, queue_site=queue_site,
                )
            await self._finish(message, ticket)

        self._spawn(finish())

    def admin_bounce(self, message: Message, response: Response, log_it: bool) -> None:
        """An operator's bounce (``AdminBounce``): as :meth:`bounce` without a path, but
        logged and forgotten with the other admin bounces, in batches
        (:mod:`kumocore.queue.bounce_batches`): a rule bounces 100,000 messages at once."""
        self.counters["admin_bounced"] += 1
        self.stats.record(_path_name(None), "failed", response)
        self.admin_bounces.add(message, response, log_it)

    def _admin_bounce_record(
        self, message: Message, response: Response, classification: str
    ) -> Ticket | None:
        return self._record("AdminBounce", message, response, None, None, None,
                            classification)  # fmt: skip

    def expire(self, path: PathView | None, message: Message, response: Response) -> None:
        """An ``Expiration`` with ``response`` (see :mod:`kumocore.mail.internal_responses`)."""
        self.bounce(path, message, response, None, None, kind="Expiration")


def _provider(kind: str, path: PathView | None, queue: ScheduledQueue | None) -> str | None:
    """The provider a record names: the scheduled queue's config's for the records the
    queue logs itself (an expiration, anything logged without a path), as KumoMTA's do;
    the egress path's for an attempt's."""
    if queue is not None and (path is None or kind == "Expiration"):
        return queue.config.provider_name
    return path.config.provider_name if path is not None else None
