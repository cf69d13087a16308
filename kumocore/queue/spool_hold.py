"""Messages that may not be delivered while the spool is unhealthy, sent back as KumoMTA
sends them.

With ``kumo.suspend_delivery_when_spool_unhealthy`` on (the default) and a spool failing
its writes (:data:`kumocore.spool.health.HOLD`), KumoMTA lets no message reach a
delivery attempt: a message removed from the spool after its delivery might not really
be removed, and would be delivered again after a restart. Each message that would be
attempted is deferred instead (KumoMTA's ``log_and_requeue_for_unhealthy_spool``):

* a ``Delayed`` record with ``451 4.4.4 KumoMTA internal: delivery suspended: spool
  unhealthy: the spool is not accepting writes``, whose site is the scheduled queue (a
  message promoted to, or drained from, a ready queue) or the ready queue (a message a
  connection had already taken: checked again just before its SMTP transaction);
* ``requeue_message`` with the insert context ``SpoolUnhealthy``, ``increment_attempts``
  true and no delay (the policy may re-bind the message);
* the attempt is counted and the message waits for its next retry on its queue's
  schedule (``retry_interval``, doubled per attempt, with the usual jitter), or expires
  when that is past its ``max_age`` or scheduled expiry;
* and, as for any message re-inserted to wait, a second ``Delayed`` record, ``Context:
  SpoolUnhealthy. Next due in ...``.

The new attempt count and due time are saved when the spool takes the write; while it
does not, the message waits in memory only (as in KumoMTA, whose save fails too): a
restart makes it due by its age.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog

from kumocore.logs.journal import Attempt
from kumocore.logs.record import RecordType
from kumocore.mail.internal_responses import internal
from kumocore.queue.requeue import requeue_event
from kumocore.queue.retry_due import retry_due
from kumocore.spool.health import UNHEALTHY_REASON

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.queue.delays import DelayOwner, Delays
    from kumocore.queue.path import EgressPath

__all__ = ["SPOOL_UNHEALTHY", "SpoolHold", "spool_unhealthy_response"]

log = structlog.get_logger("kumocore.spool")

#: KumoMTA's insert context of a message deferred for an unhealthy spool.
SPOOL_UNHEALTHY = ("SpoolUnhealthy",)


def spool_unhealthy_response(reason: str = UNHEALTHY_REASON) -> Response:
    """The ``451 4.4.4`` that KumoMTA logs for a message held back by the spool."""
    return internal(451, "4.4.4", f"delivery suspended: spool unhealthy: {reason}")


class SpoolHold:
    """Defers the messages of one node's queues while delivery is held for the spool."""

    def __init__(self, owner: DelayOwner, delays: Delays) -> None:
        self.owner, self.delays = owner, delays
        #: Messages waiting to be deferred, in order; one task works through them, so a
        #: hold that drains 100,000 ready messages runs one deferral (and one
        #: ``requeue_message`` call) at a time, not 100,000 tasks at once.
        self._pending: collections.deque[tuple[Message, str | None]] = collections.deque()
        self._worker: asyncio.Task[None] | None = None

    def defer(self, message: Message, site: str | None = None) -> None:
        """Send ``message`` back to its scheduled queue (see the module docstring);
        ``site``: the ready queue of a connection that had taken it (None: the scheduled
        queue is the site)."""
        self._pending.append((message, site))
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        try:
            while self._pending:
                message, site = self._pending.popleft()
                try:
                    await self._defer(message, site)
                except Exception as exc:  # one message must not strand the others
                    log.error("deferring a held message failed", id=message.id,
                              error=repr(exc))  # fmt: skip
        finally:
            self._worker = None

    def take_all(self, paths: Iterable[EgressPath]) -> int:
        """The hold starts: every message waiting in a ready queue goes back (KumoMTA's
        ready queue maintainer drains them into their scheduled queues, which defer each);
        how many."""
        count = 0
        for path in list(paths):
            for message in path.drain():
                self.defer(message)
                count += 1
        if count:
            log.warning("spool unhealthy: ready queue messages deferred", count=count)
        return count

    async def _defer(self, message: Message, site: str | None) -> None:
        owner = self.owner
        record = owner.record_of(message)
        if record is None or record.queue is None:
            return  # no longer owned (finished, or its queue went away)
        response = spool_unhealthy_response()
        record.last_response = response.to_single_line()
        queue = record.queue.name
        attempt = Attempt(queue=queue, site=queue if site is None else site)
        owner.journal.outcome(RecordType.Delayed, message, response, attempt)
        try:
            if await requeue_event(owner, message, response, SPOOL_UNHEALTHY, True, None):
                return  # the policy re-bound it; it is handled
        except Exception as exc:
            # A re-bind saves the message, which the spool may refuse now: it then stays
            # spooled under its old queue, for the next start to pick up.
            log.error("requeue_message of a held message failed", id=message.id,
                      error=repr(exc))  # fmt: skip
            return
        record = owner.record_of(message)
        if record is None or record.queue is None:
            return
        # KumoMTA: the delay of the attempts made so far, then the count goes up.
        due, expiry = retry_due(message, record.queue.config)
        message.num_attempts += 1
        if expiry is not None:
            owner.outcomes.expire(None, message, expiry)
            return
        message.due = due
        record.context = SPOOL_UNHEALTHY  # KumoMTA starts the context afresh here
        try:
            await owner.persist_and_schedule(message, due)
        except Exception as exc:  # the spool refuses writes: wait in memory only
            log.debug("deferred message not saved", id=message.id, error=repr(exc))
            owner.schedule(message, due)
        if owner.record_of(message) is record:
            self.delays.log_delayed(record, SPOOL_UNHEALTHY, due)
