"""When a message that failed for now is due again, or why it may not be.

A transient delivery failure (:mod:`kumocore.queue.outcomes`) and a message held back
from an unhealthy spool (:mod:`kumocore.queue.spool_hold`) reschedule the same way, as
KumoMTA's requeue does: the queue's delay for the attempts made so far (with its jitter,
or a delay the caller imposes), moved by the message's ``msg:set_scheduling`` window; and
a next attempt past the message's end (``max_age``, or the schedule's ``expires``) means
it expires now instead, with KumoMTA's text for which end it was.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kumocore.mail.internal_responses import expired_max_age, expired_schedule
from kumocore.mail.scheduling import message_schedule

if TYPE_CHECKING:
    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response

__all__ = ["retry_due"]


def retry_due(
    message: Message, config: QueueConfig, delay: float | None = None
) -> tuple[float, Response | None]:
    """``(due, expiry)``: when the next attempt is due (now plus ``delay``, by default the
    queue's jittered delay for ``message.num_attempts``), and the ``Expiration`` response
    when that is past the message's end (None: it may wait)."""
    if delay is None:
        delay = config.jittered_delay(message.num_attempts)
    due = time.time() + delay
    max_age = float(config.max_age)
    expires = message.created + max_age
    schedule = message_schedule(message.meta)  # msg:set_scheduling{...}
    if schedule is not None:
        due = schedule.adjust(due)
        if schedule.expires is not None:
            if due > schedule.expires:
                return due, expired_schedule(due, schedule.expires)
            return due, None
    return due, expired_max_age(due - message.created, max_age) if due > expires else None
