"""Feeding log records to sinks without ever making reception wait.

Every sink gets a lane: a bounded deque and one task that drains it in batches. Submitting
is synchronous and O(1) per sink — reception never awaits logging. When a sink falls behind
and its deque is full, new records are dropped *for that sink only* and counted; the other
sinks still get them. This deliberately differs from KumoMTA, whose ``back_pressure`` makes
submitters wait: in kumocore a stuck webhook must not stop mail from being accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable, Sequence

import structlog

from kumocore.logs.record import LogRecord
from kumocore.logs.sink import LogSink, SinkOptions, sink_options
from kumocore.timers import EarliestDeadline

log = structlog.get_logger("kumocore.logs")

DEFAULT_BUFFER_SIZE = 128_000  # KumoMTA's default back_pressure
DEFAULT_BATCH_SIZE = 1_000
DEFAULT_BATCH_LATENCY = 0.01  # seconds a partial batch waits for company (short: final
# outcomes wait for their record before leaving the spool, see kumocore.queue.outcomes)


class _Lane:
    """One sink's buffer, worker task and counters."""

    def __init__(self, sink: LogSink, options: SinkOptions) -> None:
        self.sink = sink
        self.options = options
        self.buffer: deque[LogRecord] = deque()
        self.wakeup = asyncio.Event()  # buffer became non-empty (or we are closing)
        self.filled = asyncio.Event()  # buffer holds a full batch (or we are closing)
        self.task: asyncio.Task[None] | None = None
        self.in_flight = 0
        # Sequence numbers of records appended / handed to the sink (written or failed);
        # ``progress`` is replaced and set after every batch, to wake ``written`` waiters.
        self.accepted = 0
        self.processed = 0
        self.progress = asyncio.Event()
        self.counts = {"submitted": 0, "written": 0, "dropped": 0, "errors": 0, "failed": 0}
        # One timer bounds every ``written`` wait on this lane (see LogDispatcher.written).
        self._watch = EarliestDeadline(self.wake_waiters)

    def stats(self) -> dict[str, int]:
        return {**self.counts, "pending": len(self.buffer) + self.in_flight}

    def wake_waiters(self) -> None:
        progress, self.progress = self.progress, asyncio.Event()
        progress.set()

    def watch(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Make sure waiters are woken at ``deadline`` at the latest (those whose deadline
        passed then give up; the others arm the watch again)."""
        self._watch.arm(loop, deadline)


#: What :meth:`LogDispatcher.submit` returns: each lane and the record's place in it.
Ticket = list[tuple[_Lane, int]]


class LogDispatcher:
    """Fan log records out to sinks, each in its own bounded, batched lane.

    ``submit`` must be called from the event loop's thread. Stats per sink: ``submitted``,
    ``written``, ``dropped`` (buffer full, or still pending at close), ``errors`` (failed
    ``write_batch`` calls), ``failed`` (records in those calls), ``pending``.
    """

    def __init__(
        self,
        sinks: Iterable[LogSink],
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_latency: float = DEFAULT_BATCH_LATENCY,
    ) -> None:
        if buffer_size < 1 or batch_size < 1 or batch_latency < 0:
            raise ValueError("buffer_size and batch_size must be >= 1, batch_latency >= 0")
        self._lanes: list[_Lane] = []
        for sink in sinks:
            if any(lane.sink.name == sink.name for lane in self._lanes):
                raise ValueError(f"two log sinks are named {sink.name!r}")
            options = sink_options(sink, buffer_size=buffer_size, batch_size=batch_size)
            self._lanes.append(_Lane(sink, options))
        self._latency = batch_latency
        self._closing = False
        seen: dict[str, None] = {}
        for lane in self._lanes:
            seen.update(dict.fromkeys(lane.options.header_names))
        self._header_names = tuple(seen)

    @property
    def sinks(self) -> list[LogSink]:
        return [lane.sink for lane in self._lanes]

    @property
    def header_names(self) -> tuple[str, ...]:
        """Every header pattern some sink selects: pass it to ``make_record``."""
        return self._header_names

    def submit(self, record: LogRecord) -> Ticket:
        """Queue ``record`` for every sink. Never blocks, never raises for a slow sink.

        The returned ticket can be awaited with :meth:`written`; callers that only log
        ignore it.
        """
        ticket: Ticket = []
        for lane in self._lanes:
            counts = lane.counts
            counts["submitted"] += 1
            buffer = lane.buffer
            if self._closing or len(buffer) >= lane.options.buffer_size:
                counts["dropped"] += 1
                continue
            buffer.append(record)
            lane.accepted += 1
            ticket.append((lane, lane.accepted))
            lane.wakeup.set()
            if len(buffer) >= lane.options.batch_size:
                lane.filled.set()
        return ticket

    async def written(self, ticket: Ticket, timeout: float) -> bool:
        """Wait until every sink has been handed the ticket's record; False on timeout.

        The queue awaits this before it deletes a message with a final outcome, so a
        crash can never leave a message both gone from the spool and missing from the logs.
        """
        # Every delivered message waits here. Rather than a timer per wait (what
        # ``asyncio.timeout`` costs), each lane has one watch timer, armed for the earliest
        # deadline of its waiters and firing at most once per ``timeout`` under load.
        deadline: float | None = None
        for lane, sequence in ticket:
            while lane.processed < sequence:
                loop = asyncio.get_running_loop()
                now = loop.time()
                if deadline is None:
                    deadline = now + timeout
                elif now >= deadline:
                    return False
                lane.watch(loop, deadline)
                await lane.progress.wait()
        return True

    async def start(self) -> None:
        """Start one drain task per sink (idempotent)."""
        for lane in self._lanes:
            if lane.task is None:
                lane.task = asyncio.create_task(
                    self._drain(lane), name=f"log-sink:{lane.sink.name}"
                )

    def stats(self) -> dict[str, dict[str, int]]:
        return {lane.sink.name: lane.stats() for lane in self._lanes}

    async def close(self, timeout: float = 10.0) -> None:
        """Stop accepting records, drain every lane (for up to ``timeout`` seconds in all),
        then close every sink. Records still pending when time runs out count as dropped."""
        if self._closing:
            return
        deadline = time.monotonic() + timeout
        await self.start()  # records submitted before start() still deserve delivery
        self._closing = True
        for lane in self._lanes:
            lane.wakeup.set()
            lane.filled.set()
        tasks = [lane.task for lane in self._lanes if lane.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, timeout))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for lane in self._lanes:
            lane.counts["dropped"] += len(lane.buffer)
            lane.buffer.clear()
            await self._close_sink(lane, max(deadline - time.monotonic(), 1.0))

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
            await self._write(lane, [buffer.popleft() for _ in range(count)])

    async def _write(self, lane: _Lane, batch: Sequence[LogRecord]) -> None:
        lane.in_flight = len(batch)
        try:
            await lane.sink.write_batch(batch)
        except asyncio.CancelledError:
            lane.counts["dropped"] += len(batch)
            raise
        except Exception as exc:
            lane.counts["errors"] += 1
            lane.counts["failed"] += len(batch)
            log.error(
                "log sink failed to write a batch",
                sink=lane.sink.name,
                records=len(batch),
                error=repr(exc),
            )
        else:
            lane.counts["written"] += len(batch)
        finally:
            lane.in_flight = 0
            lane.processed += len(batch)
            lane.wake_waiters()

    async def _close_sink(self, lane: _Lane, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await lane.sink.close()
        except Exception as exc:
            lane.counts["errors"] += 1
            log.error("log sink failed to close", sink=lane.sink.name, error=repr(exc))
