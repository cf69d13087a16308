"""A scheduled queue's own ``max_message_rate`` (``kumo.make_queue_config``), as KumoMTA's
``insert_ready`` applies it before a due message goes to its ready queue.

The throttle is ``schedq-<queue name>-message-rate``, shared by the nodes of a Redis
throttle store like every other throttle (``force_local`` keeps it to the process). A
message it refuses goes back to its scheduled queue for the throttle's ``retry_after``,
which KumoMTA's throttles give in whole seconds (a part of a second counts as one more):
no jitter (it would disturb the even flow the rate is for), no attempt counted and no
log record (KumoMTA writes a ``Delayed`` record, which kumocore does not write yet). A
message that would be due past its ``max_age`` expires instead, as KumoMTA checks at each
re-insertion. The ``requeue_message`` event is not called (KumoMTA calls it with the
response :func:`~kumocore.mail.internal_responses.queue_rate_throttled` builds, which
kumocore keeps as the message's ``last_response``, shown by ``inspect-message``).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Protocol

from kumocore.mail.internal_responses import expired_due, queue_rate_throttled
from kumocore.throttle.store import rate_key

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.egress import EgressShared
    from kumocore.queue.outcomes import Outcomes
    from kumocore.queue.queued import Queued
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.throttle.spec import ThrottleSpec

__all__ = ["throttle_queue_rate", "whole_seconds"]

#: KumoMTA's delay when the throttle's answer does not fit its time-delta type.
FALLBACK_DELAY = 60


class RateOwner(Protocol):
    """What the queue rate needs of the queue manager."""

    @property
    def egress(self) -> EgressShared: ...

    @property
    def outcomes(self) -> Outcomes: ...

    def record_of(self, message: Message) -> Queued | None: ...

    def schedule(self, message: Message, due: float) -> None: ...


def whole_seconds(retry_after: float) -> int:
    """A throttle's wait as KumoMTA's throttles report it: whole seconds, any part of a
    second from a millisecond up counting as one more."""
    if not math.isfinite(retry_after):
        return FALLBACK_DELAY
    whole = int(retry_after)
    return whole + 1 if retry_after - whole >= 0.001 else whole


async def throttle_queue_rate(
    owner: RateOwner, message: Message, queue: ScheduledQueue, spec: ThrottleSpec
) -> bool:
    """True when the queue's rate holds ``message`` back (it is then scheduled again, or
    expired); False when it may go on to its ready queue."""
    store = owner.egress.throttle_store(bool(spec.force_local))
    result = await store.throttle(rate_key(f"schedq-{queue.name}-message-rate", spec), spec)
    if not result.throttled:
        return False
    delay = whole_seconds(result.retry_after)
    due = time.time() + delay
    max_age = float(queue.config.max_age)
    if due - message.created >= max_age:
        owner.outcomes.expire(None, message, expired_due(due - message.created, max_age))
        return True
    record = owner.record_of(message)
    if record is not None:  # why it waits (inspect-message)
        record.last_response = queue_rate_throttled(queue.name, delay).to_single_line()
    message.due = due
    owner.schedule(message, due)
    return True
