"""The outcomes of one transaction for several recipients of a message (a batch).

Each recipient's reply is classified as a whole message's is (Delivery, Bounce,
TransientFailure: :meth:`Outcomes.handle <kumocore.queue.outcomes.Outcomes.handle>`);
as KumoMTA logs them, the recipients with the same reply and outcome share one record
whose ``recipient`` names them (a string for one, a list for several). Counters count
recipients, as KumoMTA's ``inc_delivered`` / ``inc_fail`` / ``inc_transfail`` do.

What happens to the message next is the caller's choice (:mod:`kumocore.queue.batch_send`):
:meth:`BatchOutcomes.batch` finishes it (no recipient left: it leaves the spool once
every record is written) or reschedules it with the recipients left (the meta record is
saved with them before it waits, the attempt counted once); :meth:`record_batch` only
writes the records, for a message the session sends on at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.mail.internal_responses import internal
from kumocore.queue.batch_groups import BOUNCE, DELIVERY, TRANSIENT, Group
from kumocore.queue.dispatchers import current as current_dispatcher
from kumocore.queue.retry_due import retry_due

if TYPE_CHECKING:
    from kumocore.delivery.tls import SessionInfo
    from kumocore.logs.dispatch import LogDispatcher, Ticket
    from kumocore.logs.journal import Journal, SourceAddress
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.queue.egress import PathView
    from kumocore.queue.path_stats import OutcomeStats
    from kumocore.queue.queued import Queued

log = structlog.get_logger("kumocore.outcomes")

_COUNTERS = {DELIVERY: ("delivered", "delivered"), BOUNCE: ("bounced", "failed"),
             TRANSIENT: ("transient", "transient")}  # fmt: skip
_CONNECTION = {DELIVERY: "delivered", BOUNCE: "failed", TRANSIENT: "transfailed"}


def retrying_batch() -> Response:
    """Why a batch waits when none of its recipients failed (its excess was not sent)."""
    return internal(400, None, "retrying failed batch")


class BatchOutcomes:
    """The batch half of :class:`kumocore.queue.outcomes.Outcomes` (see the module doc)."""

    if TYPE_CHECKING:  # Outcomes' attributes and helpers, for the type checker only
        journal: Journal
        logs: LogDispatcher | None
        counters: dict[str, int]
        stats: OutcomeStats
        _record_of: Callable[[Message], Queued | None]

        def _spawn(self, coro: Any) -> None: ...
        def _giving_up(self) -> bool: ...
        async def _finish(self, message: Message, *tickets: Ticket | None) -> None: ...
        async def _reschedule(
            self, path: PathView | None, message: Message, response: Response, due: float,
            expiry: Response | None,
        ) -> None: ...
        def _record(
            self, kind: str, message: Message, response: Response, path: PathView | None,
            peer: dict[str, str] | None, source_address: SourceAddress,
            classification: str = ..., session: SessionInfo | None = ...,
            queue_site: bool | str = ..., recipients: Sequence[str] | None = ...,
        ) -> Ticket | None: ...

    __slots__ = ()

    def count_batch(self, path: PathView | None, groups: Sequence[Group]) -> None:
        """Count every recipient's outcome (node, path and connection counters)."""
        connection = current_dispatcher.get()
        name = path.key.name if path is not None else None
        for group in groups:
            counter, stat = _COUNTERS[group.kind]
            number = len(group.recipients)
            self.counters[counter] += number
            if connection is not None:
                field = _CONNECTION[group.kind]
                setattr(connection, field, getattr(connection, field) + number)
            for _ in range(number):
                self.stats.record(name, stat, group.response)

    async def record_batch(
        self, path: PathView | None, message: Message, groups: Sequence[Group],
        peer: dict[str, str] | None, source_address: SourceAddress,
        session: SessionInfo | None = None,
    ) -> list[Ticket | None]:
        """Write one record per group (classified as a whole message's would be)."""
        tickets = []
        for group in groups:
            classification = "Uncategorized"
            if group.kind != DELIVERY:
                classification = await self.journal.classify(group.response)
            tickets.append(self._record(
                group.kind, message, group.response, path, peer, source_address,
                classification, session=session, recipients=group.recipients))
        transient = next((g.response for g in groups if g.kind == TRANSIENT), None)
        record = self._record_of(message)
        if transient is not None and record is not None:
            record.last_response = transient.to_single_line()  # inspect-message shows it
        return tickets

    async def written(self, message: Message, tickets: Sequence[Ticket | None]) -> bool:
        """Wait until ``tickets`` (the records of the recipients leaving the message)
        reached every log sink: only then may the spool forget those recipients. Saving
        first would let a crash lose a delivered recipient's record; records first at
        worst send to it again after a restart (at-least-once, as for a whole message:
        :meth:`~kumocore.queue.outcomes.Outcomes._finish`). False when a shutdown ended
        the wait: the spool then keeps the recipients it had."""
        logs = self.logs
        if logs is None:
            return True
        for ticket in tickets:
            if ticket and not await logs.written(ticket, None, give_up=self._giving_up):
                log.warning("log record not written at shutdown; the batch's recipients "
                            "stay spooled", id=message.id)  # fmt: skip
                return False
        return True

    def batch(
        self, path: PathView | None, message: Message, groups: Sequence[Group],
        peer: dict[str, str] | None, source_address: SourceAddress,
        session: SessionInfo | None = None, *, left: bool, retry_after: float | None = None,
    ) -> None:
        """Count and record ``groups``; then, unless recipients are ``left`` (the
        caller set the message's recipient list to them), forget ``message`` once the
        records are written; else reschedule it with its attempt counted (after
        ``retry_after`` seconds when given, as :meth:`Outcomes.transient`)."""
        self.count_batch(path, groups)
        self._spawn(self._batch_done(path, message, groups, peer, source_address, session,
                                     left, retry_after))

    async def _batch_done(
        self, path: PathView | None, message: Message, groups: Sequence[Group],
        peer: dict[str, str] | None, source_address: SourceAddress,
        session: SessionInfo | None, left: bool, retry_after: float | None,
    ) -> None:
        tickets = await self.record_batch(path, message, groups, peer, source_address, session)
        if not left:
            await self._finish(message, *tickets)
            return
        if not await self.written(message, tickets):
            return
        record = self._record_of(message)
        queue = record.queue if record is not None else None
        if queue is None:
            log.error("transient failure for a message without a queue", id=message.id)
            return
        due, expiry = retry_due(message, queue.config, retry_after)
        response = next((g.response for g in groups if g.kind == TRANSIENT), None)
        # The meta record saved with it holds only the recipients left.
        await self._reschedule(path, message, response or retrying_batch(), due, expiry)

