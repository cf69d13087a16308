"""Feeding log records to sinks: never losing the record of an accepted message.

Every sink gets a lane: a deque and one task that drains it in batches. Submitting is
synchronous and O(1) per sink. Two kinds of record are treated differently when a sink
falls behind (its deque holds ``buffer_size`` records):

* Records about messages (Reception, Delivery, Bounce...) are never dropped. Reception
  is back-pressured instead: :meth:`LogDispatcher.room` lets intake wait (boundedly)
  for the lanes to drain before it answers 250, so the deques stay near their bound.
* Rejection records (a hostile client can make any number of them) are shed over the
  bound; the shed count is in the stats and logged once per second while shedding.

Submitting is timed per lane (KumoMTA's ``log_submit_latency``, by logger), and each
submission that finds a lane's buffer at its bound is counted (``log_submit_full``); a
reception held in :meth:`LogDispatcher.room` counts once per lane it waited for, and its
wait is that lane's submission time (the record it waited to submit follows at once).

A batch the sink fails to write is retried, with backoff, until it is written: a record
only counts as written (and :meth:`LogDispatcher.written` only says so, which is what
lets the queue delete a finished message) once the sink accepted it (each lane's task is
the base class, :mod:`kumocore.logs.lane_writer`). Records still pending when the
dispatcher closes are counted as dropped; their messages stay spooled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

import structlog

from kumocore.logs.filter_event import LogFilter
from kumocore.logs.lane import Lane as _Lane
from kumocore.logs.lane import Ticket as Ticket  # re-exported: the queue awaits these
from kumocore.logs.lane_writer import LaneWriter
from kumocore.logs.record import LogRecord, RecordType
from kumocore.logs.sink import LogSink, sink_options
from kumocore.node.latency import LabelledHistograms

log = structlog.get_logger("kumocore.logs")

DEFAULT_BUFFER_SIZE = 128_000  # KumoMTA's default back_pressure
DEFAULT_BATCH_SIZE = 1_000
DEFAULT_BATCH_LATENCY = 0.01  # seconds a partial batch waits for company (short: final
# outcomes wait for their record before leaving the spool, see kumocore.queue.outcomes)
#: How often (seconds) the count of shed rejection records is logged while shedding.
SHED_REPORT_INTERVAL = 1.0
#: The records a hostile peer can multiply without any message being accepted.
SHEDDABLE = frozenset({RecordType.Rejection})


class LogDispatcher(LaneWriter):
    """Fan log records out to sinks, each in its own batched lane.

    ``submit`` must be called from the event loop's thread. Stats per sink: ``submitted``,
    ``written``, ``dropped`` (still pending at close, or submitted after it), ``shed``
    (rejection records over the bound), ``filtered`` (left out by the sink's
    ``filter_event``), ``errors`` (failed ``write_batch`` calls, each retried), ``failed``
    (records in those calls), ``pending``.

    ``log_filter`` asks the policy about records for sinks with a ``filter_event``
    (:mod:`kumocore.logs.filter_event`); such a sink needs one.
    """

    def __init__(
        self,
        sinks: Iterable[LogSink],
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_latency: float = DEFAULT_BATCH_LATENCY,
        log_filter: LogFilter | None = None,
    ) -> None:
        if buffer_size < 1 or batch_size < 1 or batch_latency < 0:
            raise ValueError("buffer_size and batch_size must be >= 1, batch_latency >= 0")
        self._lanes: list[_Lane] = []
        #: KumoMTA's ``log_submit_latency``, by ``logger`` (each sink's ``logger_name``).
        self.submit_latency = LabelledHistograms()
        for sink in sinks:
            if any(lane.sink.name == sink.name for lane in self._lanes):
                raise ValueError(f"two log sinks are named {sink.name!r}")
            options = sink_options(sink, buffer_size=buffer_size, batch_size=batch_size)
            if options.filter_event and log_filter is None:
                raise ValueError(f"log sink {sink.name!r} has a filter_event but the "
                                 "dispatcher has no log_filter to ask the policy with")
            self._lanes.append(
                _Lane(sink, options, self.submit_latency.labels(options.logger_name)))
        self._log_filter = log_filter
        self._latency = batch_latency
        self._closing = False
        self._shed_unreported = 0
        self._shed_timer: asyncio.TimerHandle | None = None
        seen: dict[str, None] = {}
        for lane in self._lanes:
            seen.update(dict.fromkeys(lane.options.header_names))
        self._header_names = tuple(seen)

    @property
    def sinks(self) -> list[LogSink]:
        return [lane.sink for lane in self._lanes]

    @property
    def lanes(self) -> tuple[_Lane, ...]:
        """Each sink's lane (to read its counters: ``/metrics``)."""
        return tuple(self._lanes)

    @property
    def header_names(self) -> tuple[str, ...]:
        """Every header pattern some sink selects: pass it to ``make_record``."""
        return self._header_names

    @property
    def closing(self) -> bool:
        return self._closing

    def submit(self, record: LogRecord, message: Any = None) -> Ticket:
        """Queue ``record`` for every sink. Never blocks.

        A record about a message is always queued (intake keeps the backlog bounded with
        :meth:`room`); a rejection record is shed when the sink's buffer is full. The
        returned ticket can be awaited with :meth:`written`. ``message`` is what the
        record is about (None: never filtered), for sinks with a ``filter_event``.
        """
        ticket: Ticket = []
        sheddable = record.type in SHEDDABLE
        started = perf_counter()
        for lane in self._lanes:
            counts = lane.counts
            counts["submitted"] += 1
            buffer = lane.buffer
            if self._closing:
                counts["dropped"] += 1
                continue
            if len(buffer) >= lane.options.buffer_size:
                lane.full += 1  # a record about a message goes in all the same
                if sheddable:
                    counts["shed"] += 1
                    self._note_shed()
                    continue
            buffer.append(record)
            if lane.messages is not None:
                lane.messages.append(message)
            lane.accepted += 1
            ticket.append((lane, lane.accepted))
            lane.wakeup.set()
            if len(buffer) >= lane.options.batch_size:
                lane.filled.set()
            done = perf_counter()
            lane.submit_latency.observe(done - started)
            started = done
        return ticket

    def has_room(self) -> bool:
        return all(lane.backlog < lane.options.buffer_size for lane in self._lanes)

    async def room(self, timeout: float) -> bool:
        """Wait until every sink's backlog is under its ``buffer_size``; False on timeout.

        Intake awaits this before it stores a message, so a sink that falls behind (or
        cannot write at all) slows reception down instead of losing records.
        """
        if self.has_room():
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        started = perf_counter()
        for lane in self._lanes:
            if lane.backlog < lane.options.buffer_size or lane.closed:
                continue
            lane.full += 1
            try:
                while lane.backlog >= lane.options.buffer_size and not lane.closed:
                    if loop.time() >= deadline:
                        return False
                    lane.watch(loop, deadline)
                    await lane.progress.wait()
            finally:
                lane.submit_latency.observe(perf_counter() - started)
        return True

    async def written(self, ticket: Ticket, timeout: float | None,
                      give_up: Callable[[], bool] | None = None) -> bool:
        """Wait until every sink has written the ticket's record; False on timeout, if
        the dispatcher closed before it could be written, or once ``give_up()`` says so
        (checked whenever waiters are woken, e.g. by :meth:`wake_waiters`).

        The queue awaits this before it deletes a message with a final outcome, so a
        crash or a full log disk never leaves a message gone from the spool and missing
        from the logs. It waits with no timeout: a waiter is only woken by progress.
        """
        # Every delivered message waits here. Rather than a timer per wait (what
        # ``asyncio.timeout`` costs), each lane has one watch timer, armed for the earliest
        # deadline of its waiters and firing at most once per ``timeout`` under load.
        deadline: float | None = None
        for lane, sequence in ticket:
            while lane.processed < sequence:
                if lane.closed or (give_up is not None and give_up()):
                    return False
                if timeout is not None:
                    loop = asyncio.get_running_loop()
                    now = loop.time()
                    if deadline is None:
                        deadline = now + timeout
                    elif now >= deadline:
                        return False
                    lane.watch(loop, deadline)
                await lane.progress.wait()
        return True

    @staticmethod
    def is_written(ticket: Ticket) -> bool:
        """Whether every sink has written the ticket's record now (what :meth:`written`
        waits for), for a caller that checks many tickets in order instead of waiting on
        each (:mod:`kumocore.queue.bounce_batches`)."""
        return all(lane.processed >= sequence for lane, sequence in ticket)

    def wake_waiters(self) -> None:
        """Wake every :meth:`written` and :meth:`room` waiter to re-check its condition."""
        for lane in self._lanes:
            lane.wake_waiters()

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
        then close every sink. Records still pending when time runs out count as dropped
        (the messages they are about stay in the spool)."""
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
        self._report_shed()
        for lane in self._lanes:
            lane.counts["dropped"] += len(lane.buffer)
            lane.buffer.clear()
            if lane.messages is not None:
                lane.messages.clear()
            lane.closed = True
            lane.wake_waiters()
            await self._close_sink(lane, max(deadline - time.monotonic(), 1.0))

    def _note_shed(self) -> None:
        self._shed_unreported += 1
        if self._shed_timer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: reported at close
                self._shed_timer = asyncio.get_running_loop().call_later(
                    SHED_REPORT_INTERVAL, self._report_shed)

    def _report_shed(self) -> None:
        if self._shed_timer is not None:
            self._shed_timer.cancel()
            self._shed_timer = None
        if self._shed_unreported:
            log.warning("log backlog full: rejection records shed",
                        shed=self._shed_unreported,
                        total_shed={lane.sink.name: lane.counts["shed"] for lane in self._lanes})
            self._shed_unreported = 0
