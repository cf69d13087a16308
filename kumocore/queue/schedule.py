"""Scheduled queues, and one timer for every scheduled message: a heap and a single task.

A million deferred messages must not mean a million sleeping tasks. Entries are
``(due, sequence, message_id)`` tuples in one heap; the task sleeps until the earliest is
due (or until something earlier is scheduled) and hands due messages to a callback.
Cancelling is lazy: a cancelled id is skipped when it surfaces.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kumocore.config import QueueConfig


@dataclass
class ScheduledQueue:
    """One scheduled queue (``campaign:tenant@domain``) and its configuration."""

    name: str
    config: QueueConfig
    ids: set[str] = field(default_factory=set)
    #: How many of ``ids`` the scheduler holds (not yet due, retrying or suspended); the
    #: manager keeps it on schedule/cancel/due, so summaries need not walk ``ids``.
    waiting: int = 0

    @property
    def pool_name(self) -> str:
        return self.config.egress_pool or "unspecified"


class Scheduler:
    """Calls ``on_due(message_id)`` once each scheduled id's time has come."""

    def __init__(
        self,
        on_due: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.time,
        max_batch: int = 1024,
    ) -> None:
        self._on_due = on_due
        self._clock = clock
        self._max_batch = max_batch
        self._heap: list[tuple[float, int, str]] = []
        self._due_of: dict[str, float] = {}
        self._sequence = itertools.count()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def __len__(self) -> int:
        return len(self._due_of)

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._due_of

    def due_time(self, message_id: str) -> float | None:
        return self._due_of.get(message_id)

    def schedule(self, message_id: str, due: float) -> None:
        """(Re)schedule ``message_id`` at unix time ``due``."""
        earliest = self._heap[0][0] if self._heap else None
        self._due_of[message_id] = due
        heapq.heappush(self._heap, (due, next(self._sequence), message_id))
        if earliest is None or due < earliest:
            self._wakeup.set()

    def cancel(self, message_id: str) -> bool:
        """Forget ``message_id``; True when it was scheduled."""
        return self._due_of.pop(message_id, None) is not None

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            # The flag, not only the cancel: Python 3.11's wait_for swallows a
            # cancellation that arrives as the wake-up event is set (a message scheduled
            # during shutdown), and the loop would then wait for the next due time.
            self._stopping = True
            self._wakeup.set()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def _pop_due(self, now: float) -> list[str]:
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(due) < self._max_batch:
            when, _, message_id = heapq.heappop(heap)
            # Skip cancelled ids and stale entries of rescheduled ones.
            if self._due_of.get(message_id) == when:
                del self._due_of[message_id]
                due.append(message_id)
        return due

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            now = self._clock()
            for message_id in self._pop_due(now):
                self._on_due(message_id)
            if self._heap and self._heap[0][0] <= self._clock():
                await asyncio.sleep(0)  # more due: yield to the loop, then continue
                continue
            delay = (self._heap[0][0] - self._clock()) if self._heap else None
            try:
                if delay is None:
                    await self._wakeup.wait()
                else:
                    async with asyncio.timeout(max(delay, 0.0)):
                        await self._wakeup.wait()
            except TimeoutError:
                pass
