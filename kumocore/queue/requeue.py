"""``requeue_message``: before a message goes back to its scheduled queue the policy may
re-bind it.

After a transient failure the event runs before the attempt count goes up, with the
response on one line, the insert context (``['LoggedTransientFailure']``),
``increment_attempts`` (true) and ``delay`` (nil: the queue's retry schedule applies).
A throttle that sends a due message back (the queue's ``max_message_rate``,
``throttle_insert_ready_queue``) runs it too, as KumoMTA does: with the throttle's
reason added to the insert context, ``increment_attempts`` false and the throttle's
``delay`` in seconds (nil when the event set the due time). If the handler changed what
the queue name is made of (meta ``queue``, ``tenant``, ``campaign``, ``routing_domain``),
the message moves to its new scheduled queue, one attempt counted, and is due at once —
unless its own schedule (``msg:set_scheduling``) says otherwise — as in KumoMTA.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

import structlog

from kumocore.mail.queue_name import NULL_QUEUE, message_queue
from kumocore.mail.scheduling import message_schedule
from kumocore.queue.insert_context import LOGGED_TRANSIENT_FAILURE
from kumocore.xfer.wire import is_xfer_queue_name

if TYPE_CHECKING:
    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.insert_context import Context
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.spool.store import MessageStore

log = structlog.get_logger("kumocore.queue")

#: Why the message is being re-inserted after a transient failure (KumoMTA's names).
TRANSIENT_CONTEXT: Context = LOGGED_TRANSIENT_FAILURE


class RequeueOwner(Protocol):
    """What re-binding needs of the queue manager (which calls it through the outcomes)."""

    @property
    def hooks(self) -> Hooks: ...

    @property
    def store(self) -> MessageStore: ...

    def queue_of(self, message: Message) -> ScheduledQueue | None: ...

    def insert(
        self, message: Message, queue_name: str, config: QueueConfig, context: Context = ...
    ) -> None: ...

    async def forget(self, message: Message, *, keep_spooled: bool = False) -> None: ...


async def requeue_event(
    manager: RequeueOwner, message: Message, response: Response,
    context: Context = TRANSIENT_CONTEXT, increment_attempts: bool = True,
    delay: float | None = None,
) -> bool:
    """Run ``requeue_message``; True when the message was re-bound (and is handled)."""
    from kumocore.xfer.send import xfer_queue_config

    hooks = manager.hooks
    if not hooks.implemented("requeue_message"):
        return False
    queue = manager.queue_of(message)
    before = queue.name if queue is not None else None
    try:
        await hooks.requeue_message(
            message, response.to_single_line(), list(context), increment_attempts, delay)
        name, parts = message_queue(message)
        if name == before:
            return False
        config = None
        if is_xfer_queue_name(name):  # kumo.xfer.xfer: the transfer queue's own config
            config = xfer_queue_config(name)
        elif name != NULL_QUEUE:
            config = await hooks.get_queue_config(
                parts.domain, parts.tenant, parts.campaign, parts.routing_domain)
            if config is None:
                raise LookupError(f"no queue configuration for {name!r}")
    except Exception as exc:
        # The retry must still happen: a policy error keeps the message where it was.
        log.error("requeue_message failed; message stays in its queue",
                  id=message.id, error=str(exc))
        return False
    message.num_attempts += 1
    schedule = message_schedule(message.meta)
    message.due = None if schedule is None else schedule.adjust(time.time())
    await manager.forget(message, keep_spooled=True)
    if config is None:  # re-bound to the null queue: discarded
        await manager.store.remove(message.id)
        return True
    await manager.store.save_meta(message)
    log.info("message re-bound by requeue_message", id=message.id, queue=name)
    manager.insert(message, name, config, context)
    return True
