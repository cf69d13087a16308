"""KumoMTA's ``reap_interval``: a scheduled queue that has emptied stays until it has been
empty and idle that long (its config's ``reap_interval``, 10 minutes by default), then is
reaped.

While it stays, the queue keeps its name in the queue summary and the metrics (with a
count of 0, as KumoMTA's pruning gauges do) and its configuration: a message for it
within the interval joins it as it is. A message arriving before the reap makes it busy
again; emptied again, it waits a whole interval anew.

The reaper keeps at most one heap entry per queue (a queue with one message at a time
empties after every delivery), ordered by when the queue may go; an entry whose queue
was refilled since is dropped when it comes up, one whose queue emptied again (or was
given a longer interval) is pushed back. Once :meth:`QueueReaper.start` ed, a timer on the
loop reaps when the earliest entry comes up, checking at least every :data:`MAX_SLEEP`
seconds (a timer, not a task: nothing to cancel halfway through a wait).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable

from kumocore.queue.schedule import ScheduledQueue

__all__ = ["MAX_SLEEP", "QueueReaper"]

#: The longest the reaper sleeps between two checks.
MAX_SLEEP = 60.0


class QueueReaper:
    """Reaps the empty queues of ``scheduled`` (the manager's map of them)."""

    def __init__(
        self, scheduled: dict[str, ScheduledQueue], clock: Callable[[], float] = time.monotonic,
        on_reaped: Callable[[str], None] | None = None,
    ) -> None:
        self._scheduled = scheduled
        #: Told each reaped queue's name (what is kept by queue name forgets it).
        self._on_reaped = on_reaped
        self._clock = clock
        #: (may go at, tie-break, queue)
        self._heap: list[tuple[float, int, ScheduledQueue]] = []
        self._order = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the timer fires, on this reaper's clock

    def emptied(self, queue: ScheduledQueue) -> None:
        """``queue`` has just lost its last message."""
        now = self._clock()
        queue.empty_since = now
        if not queue.reap_pending:  # else its entry, when it comes up, sees the new time
            self._push(queue, now + queue.config.reap_interval)

    def _push(self, queue: ScheduledQueue, reap_at: float) -> None:
        queue.reap_pending = True
        heapq.heappush(self._heap, (reap_at, next(self._order), queue))
        if self._timer is not None and reap_at < self._timer_at:
            self._arm()  # earlier than the next check

    def reap(self) -> int:
        """Remove every queue whose time has come; returns how many went."""
        now, reaped = self._clock(), 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, queue = heapq.heappop(heap)
            queue.reap_pending = False
            since = queue.empty_since
            if queue.ids or since is None or self._scheduled.get(queue.name) is not queue:
                continue  # refilled, or already gone
            reap_at = since + queue.config.reap_interval
            if reap_at > now:  # emptied again since, or its interval grew: not yet
                self._push(queue, reap_at)
                continue
            del self._scheduled[queue.name]
            if self._on_reaped is not None:
                self._on_reaped(queue.name)
            reaped += 1
        return reaped

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reap on ``loop`` as queues come due, until :meth:`stop`."""
        self._loop = loop
        self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop = None

    def _arm(self) -> None:
        """(Re)set the timer for the earliest entry, at most :data:`MAX_SLEEP` away."""
        if self._loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = MAX_SLEEP
        if self._heap:
            delay = min(MAX_SLEEP, max(0.0, self._heap[0][0] - self._clock()))
        self._timer_at = self._clock() + delay
        self._timer = self._loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.reap()
        self._arm()
