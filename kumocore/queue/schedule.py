"""Scheduled queues, and one timer for every scheduled message: a heap and a single task.

A million deferred messages must not mean a million sleeping tasks. Entries are
``(due, sequence, record)`` tuples in one heap; the task sleeps until the earliest is due
(or until something earlier is scheduled) and hands due records to a callback. The due
time lives on the message's one record (:class:`kumocore.queue.queued.Queued`), not in a
map of its own: a record is scheduled while its ``due`` is set. Cancelling is lazy: an
entry whose record no longer has that due time is skipped when it surfaces.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from kumocore.mail.queue_name import QueueNameParts, parse_queue_name

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
    #: When it last lost its last message (monotonic; None before it ever did). The
    #: reaper (:mod:`kumocore.queue.queue_reaper`) reads it only while ``ids`` is empty.
    empty_since: float | None = field(default=None, repr=False, compare=False)
    #: Whether the reaper holds an entry for it.
    reap_pending: bool = field(default=False, repr=False, compare=False)
    #: KumoMTA's site name of its destination, once routing or a lookup found it
    #: (:mod:`kumocore.queue.queue_providers`), and whether a lookup is on its way.
    site: str | None = field(default=None, repr=False, compare=False)
    site_pending: bool = field(default=False, repr=False, compare=False)
    #: The ``(provider, pool)`` its ``waiting`` is counted under in the provider gauges.
    counted_as: tuple[str, str] | None = field(default=None, repr=False, compare=False)
    _parts: QueueNameParts | None = field(default=None, repr=False, compare=False)

    @property
    def pool_name(self) -> str:
        return self.config.egress_pool or "unspecified"

    @property
    def parts(self) -> QueueNameParts:
        """The components of :attr:`name`, parsed once (the metrics ask at each scrape)."""
        if self._parts is None:
            self._parts = parse_queue_name(self.name)
        return self._parts


class Timed(Protocol):
    """A scheduled thing: its due time (unix seconds) while the scheduler holds it."""

    due: float | None


T = TypeVar("T", bound=Timed)


class Scheduler(Generic[T]):
    """Calls ``on_due(record)`` once each scheduled record's time has come (the record's
    ``due`` is cleared first); ``lookup(message_id)`` finds a record by id."""

    def __init__(
        self,
        on_due: Callable[[T], None],
        lookup: Callable[[str], T | None],
        *,
        clock: Callable[[], float] = time.time,
        max_batch: int = 1024,
    ) -> None:
        self._on_due = on_due
        self._lookup = lookup
        self._clock = clock
        self._max_batch = max_batch
        self._heap: list[tuple[float, int, T]] = []
        self._count = 0
        self._sequence = itertools.count()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Passes over the due records (each wake-up of the task): KumoMTA's
        #: ``total_qmaint_runs``, counted by its one scheduled-queue timer wheel per tick.
        self.runs = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, message_id: str) -> bool:
        return self.due_time(message_id) is not None

    def due_time(self, message_id: str) -> float | None:
        record = self._lookup(message_id)
        return None if record is None else record.due

    def schedule(self, record: T, due: float) -> None:
        """(Re)schedule ``record`` at unix time ``due``."""
        earliest = self._heap[0][0] if self._heap else None
        if record.due is None:
            self._count += 1
        record.due = due
        heapq.heappush(self._heap, (due, next(self._sequence), record))
        if earliest is None or due < earliest:
            self._wakeup.set()

    def cancel(self, record: T) -> bool:
        """Take ``record`` off the schedule; True when it was scheduled."""
        if record.due is None:
            return False
        record.due = None
        self._count -= 1
        return True

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

    def _pop_due(self, now: float) -> list[T]:
        due: list[T] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(due) < self._max_batch:
            when, _, record = heapq.heappop(heap)
            # Skip cancelled records and stale entries of rescheduled ones.
            if record.due == when:
                record.due = None
                self._count -= 1
                due.append(record)
        return due

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            self.runs += 1
            now = self._clock()
            for record in self._pop_due(now):
                self._on_due(record)
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
