"""The ready queue of an egress path, and its holds.

The messages due over the path: ``max_ready`` of them in memory, the rest waiting with
their bodies on disk and moving up as the queue drains; those of a scheduled queue an
operator suspended are deferred as connections take them. A path is held by a traffic
shaping ``Suspend`` or an operator (until a wall-clock time) and while the spool is
unhealthy. :class:`PathQueue` is that part of :class:`kumocore.queue.path.EgressPath`,
which owns the state and opens the connections (:meth:`~PathQueue.wake`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from kumocore.mail.internal_responses import queue_suspended
from kumocore.node.memory import MEMORY
from kumocore.queue import pressure
from kumocore.queue.dispatchers import current as current_dispatcher
from kumocore.queue.slots import YIELD_CHECK_SECONDS
from kumocore.queue.watchdog import give_back_wedged
from kumocore.spool.health import HOLD

#: Added to a hold's remaining time when its resume timer is armed, so that the timer
#: does not run before the hold is over by the wall clock.
RESUME_MARGIN = 0.005

if TYPE_CHECKING:
    import collections

    from kumocore.config import EgressPathConfig, EgressSource
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.policy.refresh import Freshness
    from kumocore.queue.admin import AdminRules
    from kumocore.queue.batch_groups import BatchMemory
    from kumocore.queue.egress import EgressShared, PathKey
    from kumocore.queue.slots import PathThrottles, Slot

#: The most messages of suspended scheduled queues the connections of a path defer
#: (:meth:`EgressPath.take`) in one pass of the event loop: a ready queue of 50,000 whose
#: scheduled queue was suspended would otherwise be logged and rescheduled in one go.
DEFER_BATCH = 32


class PathQueue:
    """The messages due over one egress path, and what holds them (the state is set by
    :class:`kumocore.queue.path.EgressPath`)."""

    shared: EgressShared
    key: PathKey
    source: EgressSource
    config: EgressPathConfig
    freshness: Freshness
    messages: collections.deque[Message]
    overflow: collections.deque[Message]
    #: Messages that did not fit in ``messages`` (``ready_full``; kept with the path).
    ready_full: int
    throttles: PathThrottles
    batch_memory: BatchMemory
    suspended_until: float
    _resume: asyncio.TimerHandle | None
    _deferred_in_pass: int

    if TYPE_CHECKING:

        def wake(self) -> None:
            """Open connections if there is work (:meth:`EgressPath.wake`)."""

    # ------------------------------------------------------------------ the ready queue
    def __len__(self) -> int:
        return len(self.messages) + len(self.overflow)

    @property
    def is_full(self) -> bool:
        return len(self.messages) >= self.config.max_ready

    @property
    def connection_limit(self) -> int:
        return int(self.config.connection_limit.limit)

    def add(self, message: Message) -> bool:
        """Queue ``message``; True when it did not fit (KumoMTA's ``ready_full``): the
        ready queue held ``max_ready`` messages, or others still wait beyond them, so it
        waits in the overflow with its body released (not sent back to its scheduled
        queue, as KumoMTA does)."""
        if HOLD.active and self.held_for_spool(message, None):
            return False  # KumoMTA's insert_ready defers it while the spool is unhealthy
        if self.is_full or self.overflow:
            message.release_data()  # durable already; delivery reloads it from the spool
            self.overflow.append(message)
            self.ready_full += 1
            self.wake()
            return True
        if MEMORY.low:  # one attribute test per message; the body stays on disk
            pressure.entering(self, message)
        self.messages.append(message)
        self.wake()
        return False

    def take(self) -> Message | None:
        """The next message of the ready queue (None when it is empty).

        As KumoMTA's connections do when they take a message, one whose scheduled queue
        an operator suspended since it came here is not sent: it gets the suspended
        queue's ``TransientFailure`` (site: this ready queue) and waits for its retry.
        """
        admin = self.shared.admin
        while self.messages:
            message = self.messages.popleft()
            if self.overflow:
                while self.overflow and len(self.messages) < self.config.max_ready // 2 + 1:
                    self.messages.append(self.overflow.popleft())
            # Asked only while some suspension exists: the common path is one test.
            if admin is not None and admin.suspensions and self._defer_suspended(message, admin):
                self._deferred_in_pass += 1
                if self._deferred_in_pass == DEFER_BATCH:  # the count starts over next pass
                    asyncio.get_running_loop().call_soon(self._new_defer_pass)
                if self._deferred_in_pass >= DEFER_BATCH:
                    return None  # more may follow: the caller yields before it asks again
                continue
            return message
        return None

    def held_for_spool(self, message: Message, site: str | None) -> bool:
        """While delivery is held for an unhealthy spool, ``message`` goes back to its
        scheduled queue (:mod:`kumocore.queue.spool_hold`; ``site``: this ready queue's
        name for a message a connection took, None for one entering it); False when
        delivery is not held. Connections ask again just before each transaction."""
        spool_hold = self.shared.spool_hold
        if not HOLD.active or spool_hold is None:
            return False
        spool_hold(message, site)
        return True

    def _new_defer_pass(self) -> None:
        self._deferred_in_pass = 0

    def _defer_suspended(self, message: Message, admin: AdminRules) -> bool:
        queue = self.shared.queue_of(message)
        rule = admin.suspension_for(message.queue_name() if queue is None else queue.name)
        if rule is None:
            return False
        self.batch_memory.forget(message.id)  # it waits: its retry starts afresh
        self.shared.outcomes.transient(None, message, queue_suspended(rule.reason), None,
                                       None, queue_site=self.key.name)  # fmt: skip
        return True

    def put_back(self, messages: list[Message]) -> None:
        """Messages taken but not handed to an outcome go back to the front, in order:
        never left outside both the queue and the scheduler. Those of a connection an
        operator aborted go back to their scheduled queue instead, as KumoMTA's dispatcher
        drop sends them (:meth:`Delays.give_back
        <kumocore.queue.delays.Delays.give_back>`); those of a connection the progress
        watchdog aborted, after their ``Delayed`` record
        (:func:`~kumocore.queue.watchdog.give_back_wedged`)."""
        if not messages:
            return
        connection = current_dispatcher.get()
        if connection is not None and connection.aborted:
            give_back = self.shared.give_back
            if give_back is not None:
                if connection.cause is not None:  # aborted by the progress watchdog
                    give_back_wedged(self, connection, messages)
                    return
                for message in messages:
                    self.batch_memory.forget(message.id)
                    give_back(message)
                return
        self.messages.extendleft(reversed(messages))

    def drain(self) -> list[Message]:
        """Take every queued message (for shutdown, an admin bounce or rebinding)."""
        taken = [*self.messages, *self.overflow]
        self.messages.clear()
        self.overflow.clear()
        if self.batch_memory:  # batches between two transactions leave the path
            for message in taken:
                self.batch_memory.forget(message.id)
        return taken

    def fail_queued(self, response: Response) -> None:
        """No connection could be had: every queued message gets ``response`` (usually
        transient, retried with backoff; ``550 5.4.4`` when every MX address is
        prohibited, which would otherwise be a mail loop)."""
        for message in self.drain():
            self.shared.outcomes.handle(self, message, response, peer=None)

    async def next_message(self, idle: float, slot: Slot | None = None) -> Message | None:
        """The next message, waiting up to ``idle`` seconds for one to arrive.

        An idle connection also gives up early when its slot is wanted elsewhere: the
        workers of a node share one connection limit, and one worker's idle connections
        would otherwise starve another worker's queue for the whole ``idle_timeout``.
        """
        now = time.monotonic()
        deadline, check_at = now + idle, now + YIELD_CHECK_SECONDS
        while not self.messages or self.suspended:
            now = time.monotonic()
            if now >= deadline or self.suspended:
                return None
            if now >= check_at:
                if await self.throttles.wanted(slot):
                    return None
                check_at = time.monotonic() + YIELD_CHECK_SECONDS
                continue
            await asyncio.sleep(min(0.05, idle))
        message = self.take()
        while message is None and self.messages:  # take() stopped after a batch deferred
            await asyncio.sleep(0)
            message = self.take()
        return message

    # ------------------------------------------------------------------ config and holds
    def refresh(self, config: EgressPathConfig, source: EgressSource, freshness: Freshness) -> None:
        """Routing looked the path's configuration up again (``refresh_strategy``)."""
        self.config, self.source, self.freshness = config, source, freshness

    def reconfigure(self, config: EgressPathConfig, freshness: Freshness) -> None:
        """Use a new configuration now (automation changed an option of this path)."""
        self.refresh(config, self.source, freshness)
        self.wake()

    @property
    def suspended(self) -> bool:
        # HOLD: delivery is held while the spool is unhealthy (kumocore.spool.health).
        return HOLD.active or time.time() < self.suspended_until

    def suspend_until(self, until: float) -> None:
        """Hold the path until ``until`` (a wall-clock time; 0: not held). A hold that is
        lifted, or that lapsed meanwhile, wakes the path."""
        if until == self.suspended_until:
            return
        self.suspended_until = until
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self.suspended:
            self._resume_when_due()
        else:
            # Not "if it was held": a hold can lapse a moment before the automation's
            # next sync lifts it, and that sync is then the path's only wake-up.
            self.wake()

    def _resume_when_due(self) -> None:
        """Wake the path when its hold is over. The loop's timers may run up to a clock
        tick early and the wall clock may step, so the hold is checked again when the
        timer runs, and the timer armed again if it is not over yet."""
        self._resume = None
        remaining = self.suspended_until - time.time()
        if remaining > 0:
            self._resume = asyncio.get_running_loop().call_later(
                remaining + RESUME_MARGIN, self._resume_when_due
            )
        else:
            self.wake()
