"""A scheduled queue's own ``max_message_rate`` (``kumo.make_queue_config``), as KumoMTA's
``insert_ready`` applies it before a due message goes to its ready queue.

The throttle is ``schedq-<queue name>-message-rate``, shared by the nodes of a Redis
throttle store like every other throttle (``force_local`` keeps it to the process). A
message it refuses goes back to its scheduled queue for the throttle's ``retry_after``,
which KumoMTA's throttles give in whole seconds (a part of a second counts as one more):
no jitter (it would disturb the even flow the rate is for) and no attempt counted. As in
KumoMTA, the ``requeue_message`` event runs first (insert context ending in
``MessageRateThrottle``, ``increment_attempts`` false, ``delay`` the wait in seconds; it
may re-bind the message), then a message that would be due past its ``max_age`` expires,
and any other waits with a ``Delayed`` record. The response the event is told
(:func:`~kumocore.mail.internal_responses.queue_rate_throttled`) is also kept as the
message's ``last_response``, shown by ``inspect-message``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Protocol

from kumocore.mail.internal_responses import expired_due, queue_rate_throttled
from kumocore.throttle.store import rate_key

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.delays import Delays
    from kumocore.queue.egress import EgressShared
    from kumocore.queue.outcomes import Outcomes
    from kumocore.queue.queued import Queued
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.throttle.spec import ThrottleSpec

__all__ = ["throttle_queue_rate", "whole_seconds"]

#: The insert reason of a message this rate sends back (KumoMTA's).
RATE_THROTTLED = "MessageRateThrottle"

#: KumoMTA's delay when the throttle's answer does not fit its time-delta type.
FALLBACK_DELAY = 60


class RateOwner(Protocol):
    """What the queue rate needs of the queue manager."""

    @property
    def egress(self) -> EgressShared: ...

    @property
    def outcomes(self) -> Outcomes: ...

    def record_of(self, message: Message) -> Queued | None: ...

    @property
    def delays(self) -> Delays: ...


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
    response = queue_rate_throttled(queue.name, delay)
    if await owner.delays.requeue(message, response, RATE_THROTTLED, float(delay)):
        return True  # the policy re-bound it
    due = time.time() + delay
    max_age = float(queue.config.max_age)
    if due - message.created >= max_age:
        owner.outcomes.expire(None, message, expired_due(due - message.created, max_age))
        return True
    record = owner.record_of(message)
    if record is not None:  # why it waits (inspect-message)
        record.last_response = response.to_single_line()
    await owner.delays.delay(message, due, RATE_THROTTLED)
    return True
