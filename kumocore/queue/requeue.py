"""``requeue_message``: after a transient failure the policy may re-bind the message.

The event runs before the attempt count goes up, with the response on one line, the
insert context (``['LoggedTransientFailure']``), ``increment_attempts`` (true) and
``delay`` (nil: the queue's retry schedule applies). If the handler changed what the queue
name is made of (meta ``queue``, ``tenant``, ``campaign``, ``routing_domain``), the message
moves to its new scheduled queue and is due at once — unless its own schedule
(``msg:set_scheduling``) says otherwise — as in KumoMTA.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

import structlog

from kumocore.mail.queue_name import NULL_QUEUE, message_queue
from kumocore.mail.scheduling import message_schedule

if TYPE_CHECKING:
    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.spool.store import MessageStore

log = structlog.get_logger("kumocore.queue")

#: Why the message is being re-inserted (KumoMTA's InsertReason names).
TRANSIENT_CONTEXT = ("LoggedTransientFailure",)


class RequeueOwner(Protocol):
    """What re-binding needs of the queue manager (which calls it through the outcomes)."""

    @property
    def hooks(self) -> Hooks: ...

    @property
    def store(self) -> MessageStore: ...

    def queue_of(self, message: Message) -> ScheduledQueue | None: ...

    def insert(self, message: Message, queue_name: str, config: QueueConfig) -> None: ...

    async def forget(self, message: Message, *, keep_spooled: bool = False) -> None: ...


async def requeue_event(manager: RequeueOwner, message: Message, response: Response) -> bool:
    """Run ``requeue_message``; True when the message was re-bound (and is handled)."""
    hooks = manager.hooks
    if not hooks.implemented("requeue_message"):
        return False
    queue = manager.queue_of(message)
    before = queue.name if queue is not None else None
    try:
        await hooks.requeue_message(
            message, response.to_single_line(), list(TRANSIENT_CONTEXT), True, None)
        name, parts = message_queue(message)
        if name == before:
            return False
        config = None
        if name != NULL_QUEUE:
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
    manager.insert(message, name, config)
    return True
