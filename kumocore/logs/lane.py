"""One log sink's lane in the :class:`~kumocore.logs.dispatch.LogDispatcher`: its buffer,
its counters, and the event that wakes whoever waits for its progress."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from kumocore.logs.record import LogRecord
from kumocore.logs.sink import LogSink, SinkOptions
from kumocore.node.latency import Histogram
from kumocore.node.timers import EarliestDeadline

__all__ = ["Lane", "Ticket"]


class Lane:
    """One sink's buffer, worker task and counters."""

    def __init__(self, sink: LogSink, options: SinkOptions,
                 submit_latency: Histogram | None = None) -> None:
        self.sink = sink
        self.options = options
        #: KumoMTA's ``log_submit_latency`` of this lane's logger (shared by lanes whose
        #: sinks have one ``logger_name``), and its ``log_submit_full``: submissions (and
        #: receptions held for room) that found the buffer at ``buffer_size``.
        self.submit_latency = Histogram() if submit_latency is None else submit_latency
        self.full = 0
        self.buffer: deque[LogRecord] = deque()
        #: The message of each buffered record (None for a Rejection), kept in step with
        #: ``buffer`` only when the sink has a ``filter_event`` that will be asked about it.
        self.messages: deque[Any] | None = deque() if options.filter_event else None
        self.wakeup = asyncio.Event()  # buffer became non-empty (or we are closing)
        self.filled = asyncio.Event()  # buffer holds a full batch (or we are closing)
        self.task: asyncio.Task[None] | None = None
        self.in_flight = 0
        self.closed = False  # no more writes: waiters whose record is not written give up
        # Sequence numbers of records appended / written by the sink; ``progress`` is
        # replaced and set after every attempt, to wake ``written`` and ``room`` waiters.
        self.accepted = 0
        self.processed = 0
        self.progress = asyncio.Event()
        self.counts = {"submitted": 0, "written": 0, "dropped": 0, "errors": 0, "failed": 0,
                       "shed": 0, "filtered": 0}
        # One timer bounds every ``written`` wait on this lane (see LogDispatcher.written).
        self._watch = EarliestDeadline(self.wake_waiters)

    def stats(self) -> dict[str, int]:
        return {**self.counts, "pending": len(self.buffer) + self.in_flight}

    @property
    def backlog(self) -> int:
        return len(self.buffer) + self.in_flight

    def wake_waiters(self) -> None:
        progress, self.progress = self.progress, asyncio.Event()
        progress.set()

    def watch(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Make sure waiters are woken at ``deadline`` at the latest (those whose deadline
        passed then give up; the others arm the watch again)."""
        self._watch.arm(loop, deadline)


#: What :meth:`LogDispatcher.submit` returns: each lane and the record's place in it.
Ticket = list[tuple[Lane, int]]
