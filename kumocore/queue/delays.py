"""Sending an owned message back to its scheduled queue until later, and saying so.

Three things delay a message that was due: the queue's ``max_message_rate``, the
policy's ``throttle_insert_ready_queue`` and an operator aborting the connection that held
it (``abort-ready-q-conn``: KumoMTA's *dispatcher drop*). Each first runs
``requeue_message`` (the policy may re-bind the message), then the message waits in its
scheduled queue with a ``Delayed`` record saying why (KumoMTA's insert context), and no
attempt counted. The queue rate waits for its throttle; the other two are re-inserted
without a delay of their own, which KumoMTA turns into its jitter of 0 to 59 whole
seconds, whatever due time the event set (:meth:`Delays.jittered`). A wait of a minute
or more is saved to the spool (:data:`SAVE_FROM`).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Protocol

from kumocore.mail import internal_responses
from kumocore.queue.insert_context import DISPATCHER_DROP, ENUMERATED, logs_delay, note
from kumocore.queue.insert_context import text as context_text
from kumocore.queue.requeue import RequeueOwner, requeue_event

if TYPE_CHECKING:
    from kumocore.logs.journal import Journal
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.queue.insert_context import Context
    from kumocore.queue.outcomes import Outcomes
    from kumocore.queue.queued import Queued

__all__ = ["DROP_JITTER", "SAVE_FROM", "DelayOwner", "Delays", "drop_delay"]

#: KumoMTA's jitter for a message an aborted connection gives back: whole seconds below it.
DROP_JITTER = 60


#: A delay at least this long (seconds) is saved to the spool with the message, so that a
#: restart keeps it (KumoMTA keeps no due time in its spool: a restart makes every message
#: due by its age). A shorter one is not: the queue rate's waits of a few seconds would
#: otherwise cost a spool write per throttled message per wait, and a restart takes about
#: as long as the wait anyway.
SAVE_FROM = 60.0


def drop_delay() -> int:
    """How long a message re-inserted without a delay of its own waits (0 to 59 s: KumoMTA's
    ``delay_with_jitter(60)``): one an aborted connection gave back, or one
    ``throttle_insert_ready_queue`` delayed."""
    return random.randrange(DROP_JITTER)


class DelayOwner(RequeueOwner, Protocol):
    """What delaying needs of the queue manager."""

    @property
    def journal(self) -> Journal: ...

    @property
    def outcomes(self) -> Outcomes: ...

    def record_of(self, message: Message) -> Queued | None: ...

    def schedule(self, message: Message, due: float) -> None: ...

    async def persist_and_schedule(self, message: Message, due: float) -> None: ...

    def route_now(self, message_id: str) -> None: ...


class Delays:
    """The manager's delays: ``Delayed`` records, throttle delays, dispatcher drops."""

    def __init__(self, owner: DelayOwner) -> None:
        self.owner = owner
        #: Messages on their way back from aborted connections (:meth:`give_back`).
        self._background: set[asyncio.Task[None]] = set()

    def log_delayed(self, record: Queued, context: Context, due: float) -> None:
        queue = record.queue
        self.owner.journal.delayed(record.message, queue="" if queue is None else queue.name,
                                   context=context_text(context), due=due)  # fmt: skip

    async def delay(self, message: Message, due: float, reason: str) -> None:
        """Send an owned message back to its scheduled queue until ``due`` because of
        ``reason`` (an insert reason: ``MessageRateThrottle``, ...), with the ``Delayed``
        record KumoMTA writes for it. A wait of :data:`SAVE_FROM` or more is saved to the
        spool first, as a retry time is, so that a restart keeps it."""
        owner = self.owner
        record = owner.record_of(message)
        if record is None:
            return
        message.due = due
        if due - time.time() >= SAVE_FROM:
            await owner.persist_and_schedule(message, due)
            if owner.record_of(message) is not record:  # finished or re-bound meanwhile
                return
        else:
            owner.schedule(message, due)
        context = note(record.context, reason)
        if logs_delay(context):
            self.log_delayed(record, context, due)

    async def requeue(
        self, message: Message, response: Response, reason: str, delay: float | None
    ) -> bool:
        """Run ``requeue_message`` for a message a throttle sends back (``reason``), no
        attempt counted; True when the policy re-bound it (it is then handled)."""
        record = self.owner.record_of(message)
        context = note(ENUMERATED if record is None else record.context, reason)
        return await requeue_event(self.owner, message, response, context, False, delay)

    def give_back(
        self,
        message: Message,
        context: Context = DISPATCHER_DROP,
        response: Response = internal_responses.RETURNED_TO_SCHEDULED_QUEUE,
    ) -> None:
        """A message an operator's abort took from its connection (``abort-ready-q-conn``)
        goes back to its scheduled queue, as KumoMTA's dispatcher drop sends it: after
        ``requeue_message`` (which may re-bind it), due in 0 to 59 whole seconds (its
        jitter), with a ``Delayed`` record; no attempt counted. ``context``: why (the
        ready queue of a suspended source is emptied the same way, under its reason).
        ``response``: what ``requeue_message`` sees (the progress watchdog's reply for a
        connection it aborted, whose context says its record is written already)."""
        task = asyncio.get_running_loop().create_task(self._give_back(message, context, response))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _give_back(self, message: Message, context: Context, response: Response) -> None:
        record = self.owner.record_of(message)
        if record is None:
            return
        record.context = context  # KumoMTA starts the context afresh here
        if await requeue_event(self.owner, message, response, context, False, None):
            return
        await self.jittered(message, context[0])

    async def jittered(self, message: Message, reason: str) -> None:
        """Re-time an owned message as KumoMTA re-inserts one with neither an attempt nor
        a delay to apply (a dispatcher drop, ``throttle_insert_ready_queue``): due in 0 to
        59 whole seconds from now (:func:`drop_delay`), whatever due time it had; expired
        if that is past its queue's ``max_age``; routed again at once for 0 s."""
        owner = self.owner
        record = owner.record_of(message)
        if record is None:
            return
        delay = drop_delay()
        due, queue = time.time() + delay, record.queue
        max_age = float(queue.config.max_age) if queue is not None else float("inf")
        if due - message.created >= max_age:
            owner.outcomes.expire(
                None, message, internal_responses.expired_due(due - message.created, max_age)
            )
        elif delay == 0:  # due at once: KumoMTA routes it without a record
            message.due = None
            owner.route_now(message.id)
        else:
            await self.delay(message, due, reason)

    async def drain(self) -> None:
        """Wait for the messages still on their way back (at shutdown)."""
        await asyncio.gather(*self._background, return_exceptions=True)
