"""Writing a log sink's lane: the drain task of each sink in the dispatcher.

Each lane's task waits for records, gives a partial batch a moment to fill, asks the
sink's ``filter_event`` about the batch when it has one, and writes it. A batch the sink
fails to write is retried, with backoff, until it is written: only then do its records
count as written, which is what lets the queue delete a finished message. A write
cancelled at close counts its records as dropped.

The writing half of :class:`kumocore.logs.dispatch.LogDispatcher` (its base class):
submitting records, back-pressure and closing are there, getting each lane's records to
its sink is here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.logs.filter_event import filter_batch

if TYPE_CHECKING:
    from kumocore.logs.filter_event import LogFilter
    from kumocore.logs.lane import Lane as _Lane
    from kumocore.logs.record import LogRecord

log = structlog.get_logger("kumocore.logs")

#: Backoff between attempts to write a failed batch again: doubles up to the maximum.
RETRY_INITIAL = 0.05
RETRY_MAX = 5.0


class LaneWriter:
    """The writing half of :class:`kumocore.logs.dispatch.LogDispatcher` (see the module doc)."""

    if TYPE_CHECKING:  # LogDispatcher's attributes, for the type checker only
        _closing: bool
        _latency: float
        _log_filter: LogFilter | None

    __slots__ = ()

    async def _drain(self, lane: _Lane) -> None:
        buffer = lane.buffer
        while True:
            if not buffer:
                if self._closing:
                    return
                lane.wakeup.clear()
                await lane.wakeup.wait()
                continue
            if len(buffer) < lane.options.batch_size and not self._closing and self._latency:
                # Give a partial batch a moment to fill: one write of 1000 records is far
                # cheaper than 1000 writes of one, and the wait is bounded.
                lane.filled.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._latency):
                        await lane.filled.wait()
            count = min(len(buffer), lane.options.batch_size)
            messages = lane.messages
            await self._write(lane, [buffer.popleft() for _ in range(count)],
                              None if messages is None else
                              [messages.popleft() for _ in range(count)])

    async def _write(self, lane: _Lane, batch: Sequence[LogRecord],
                     messages: Sequence[Any] | None = None) -> None:
        """Write ``batch`` (what the sink's ``filter_event`` keeps of it, when ``messages``
        are given), retrying with backoff until the sink takes it (or we are cancelled at
        close, when it counts as dropped)."""
        taken = lane.in_flight = len(batch)
        delay = RETRY_INITIAL
        try:
            if messages is not None:
                batch = await self._filter(lane, batch, messages)
            while batch:
                try:
                    await lane.sink.write_batch(batch)
                except Exception as exc:
                    lane.counts["errors"] += 1
                    lane.counts["failed"] += len(batch)
                    log.error("log sink failed to write a batch; retrying",
                              sink=lane.sink.name, records=len(batch),
                              retry_in=round(delay, 3), error=repr(exc))
                    lane.wake_waiters()  # ``room`` waiters re-check their deadline
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                break
            lane.counts["written"] += len(batch)
            lane.processed += taken
        except asyncio.CancelledError:
            lane.counts["dropped"] += taken
            raise
        finally:
            lane.in_flight = 0
            lane.wake_waiters()

    async def _filter(self, lane: _Lane, batch: Sequence[LogRecord],
                      messages: Sequence[Any]) -> list[LogRecord]:
        event, log_filter = lane.options.filter_event, self._log_filter
        assert event is not None and log_filter is not None  # checked in __init__
        return await filter_batch(log_filter, lane.sink, event, batch, messages, lane.counts)

    async def _close_sink(self, lane: _Lane, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await lane.sink.close()
        except Exception as exc:
            lane.counts["errors"] += 1
            log.error("log sink failed to close", sink=lane.sink.name, error=repr(exc))
