"""Transient outcomes: log the TransientFailure, then requeue, reschedule or expire.

A transient failure (a 4xx, a connection that could not be made...) is logged with the
attempts made so far; then the policy's ``requeue_message`` may move the message, or the
attempt is counted and the message waits for its queue's next retry time (its meta record
saved first), or expires when that time is past the queue's ``max_age``. An attempt sent
again at once over another connection (``try_next_host_on_transport_error``) is only
logged.

The retry half of :class:`kumocore.queue.outcomes.Outcomes` (its base class, as
:class:`~kumocore.queue.batch_outcomes.BatchOutcomes` is for batches): the final
outcomes there, the way back to the scheduler here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.queue.dispatchers import current as current_dispatcher
from kumocore.queue.retry_due import retry_due

if TYPE_CHECKING:
    from kumocore.delivery.tls import SessionInfo
    from kumocore.logs.dispatch import Ticket
    from kumocore.logs.journal import Journal, SourceAddress
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.queue.egress import PathView
    from kumocore.queue.path_stats import OutcomeStats
    from kumocore.queue.queued import Queued

log = structlog.get_logger("kumocore.outcomes")


def _path_name(path: PathView | None) -> str | None:
    return path.key.name if path is not None else None


class RetryOutcomes:
    """The retry half of :class:`kumocore.queue.outcomes.Outcomes` (see the module doc)."""

    if TYPE_CHECKING:  # Outcomes' attributes and helpers, for the type checker only
        journal: Journal
        counters: dict[str, int]
        stats: OutcomeStats
        _record_of: Callable[[Message], Queued | None]
        _retry: Callable[[Message, float], Awaitable[None]]
        _requeue: Callable[[Message, Response], Awaitable[bool]]

        def _spawn(self, coro: Any) -> None: ...
        def expire(self, path: PathView | None, message: Message, response: Response) -> None: ...
        def _record(
            self, kind: str, message: Message, response: Response, path: PathView | None,
            peer: dict[str, str] | None, source_address: SourceAddress,
            classification: str = ..., session: SessionInfo | None = ...,
            queue_site: bool | str = ..., recipients: Sequence[str] | None = ...,
        ) -> Ticket | None: ...

    __slots__ = ()

    def transient(
        self,
        path: PathView | None,
        message: Message,
        response: Response,
        peer: dict[str, str] | None,
        source_address: SourceAddress,
        session: SessionInfo | None = None,
        retry_after: float | None = None,
        queue_site: bool | str = False,
    ) -> None:
        """Log and reschedule; ``retry_after`` (seconds) replaces the queue's schedule for
        this attempt (KumoMTA retries a failed maildir write after a minute).
        ``queue_site``: the record is about the scheduled queue, not a path (KumoMTA's
        record of a suspended queue names the queue as its site, and no pool); a string
        is the site to name instead (the ready queue that found the queue suspended)."""
        self.counters["transient"] += 1
        self.stats.record(_path_name(path), "transient", response)
        record = self._record_of(message)
        queue = record.queue if record is not None else None
        if record is not None:  # why it waits (``inspect-message``); goes with the record
            record.last_response = response.to_single_line()
        if queue is None:
            log.error("transient failure for a message without a queue", id=message.id)
            return
        due, expiry = retry_due(message, queue.config, retry_after)

        async def finish() -> None:
            classification = await self.journal.classify(response)
            # As in KumoMTA, the record shows the attempts made before this one; the
            # count goes up when the message is requeued.
            self._record(
                "TransientFailure", message, response, path, peer, source_address,
                classification, session=session, queue_site=queue_site,
            )
            await self._reschedule(path, message, response, due, expiry)

        self._spawn(finish())

    async def _reschedule(
        self, path: PathView | None, message: Message, response: Response, due: float,
        expiry: Response | None,
    ) -> None:
        """After a transient outcome (of the message, or of the recipients a batch has
        left): ``requeue_message`` may move it; else the attempt is counted and the
        message expires, or waits until ``due`` (its meta record saved first)."""
        if await self._requeue(message, response):
            return  # the policy moved it to another queue
        message.num_attempts += 1
        if expiry is not None:
            self.expire(path, message, expiry)
            return
        message.due = due
        await self._retry(message, due)

    async def transient_retried_now(
        self,
        path: PathView,
        message: Message,
        response: Response,
        peer: dict[str, str] | None,
        source_address: SourceAddress,
        session: SessionInfo | None = None,
    ) -> None:
        """A ``TransientFailure`` record for an attempt whose message the caller sends
        again at once over another connection (``try_next_host_on_transport_error``): as
        in KumoMTA, the attempt is not counted and nothing is rescheduled. The record is
        written before the caller goes on, so it precedes the next attempt's."""
        connection = current_dispatcher.get()
        if connection is not None:
            connection.transfailed += 1
        self.counters["transient"] += 1
        self.stats.record(_path_name(path), "transient", response)
        record = self._record_of(message)
        if record is not None:
            record.last_response = response.to_single_line()
        classification = await self.journal.classify(response)
        self._record("TransientFailure", message, response, path, peer, source_address,
                     classification, session=session)
