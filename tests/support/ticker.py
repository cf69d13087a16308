"""A 1 ms sleeper on the running event loop, for the tests that check work does not stall
the loop: the longest gap between its wake-ups is what another client on the same loop
would have waited.

    async with LoopTicker() as ticker:
        await work()
    assert ticker.longest < 0.1

A gap counts the time the loop's thread ran, slept or blocked, but not the time it was
ready to run and waited for a CPU (Linux's per-thread ``schedstat``, where the kernel
provides it): on CI's two cores the other test processes preempt the loop now and then,
and that wait says nothing about the code under test. A blocking call, a long callback or
a lock held by another thread is still counted in full. The ticker also collects garbage
before it starts, so an earlier test's garbage is not collected (and charged) here.

``longest`` may be read while it runs (a fixture can keep one going for a whole test);
``start()`` and ``await stop()`` are the same as entering and leaving the ``async with``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from types import TracebackType
from typing import Self

PERIOD = 0.001


class RunQueueClock:
    """Nanoseconds the calling thread has spent runnable but waiting for a CPU (0 where
    the kernel does not say: then gaps are plain wall-clock gaps)."""

    def __init__(self) -> None:
        path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self._fd = None

    def waited(self) -> float:
        """Seconds waited for a CPU so far (the second field of ``schedstat``)."""
        if self._fd is None:
            return 0.0
        return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LoopTicker:
    """Sleeps ``period`` seconds at a time on the running loop and keeps every gap between
    two wake-ups (the sleep included, the time spent waiting for a CPU not: a gap never
    falls below ``period``)."""

    def __init__(self, period: float = PERIOD) -> None:
        self.period = period
        self.gaps: list[float] = []
        #: Wall-clock gaps, preemption included (for a test's failure message).
        self.wall_gaps: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def longest(self) -> float:
        """The longest gap so far, the sleep included (0 before the first wake-up)."""
        return max(self.gaps, default=0.0)

    @property
    def longest_overrun(self) -> float:
        """How much later than asked the latest wake-up came: ``longest`` less the period."""
        return max(self.longest - self.period, 0.0)

    def start(self) -> None:
        assert self._task is None, "a ticker runs once"
        gc.collect()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stops after one more wake-up, so that a stall still going on when the measured
        work ended is counted too (cancelling would drop that last gap)."""
        assert self._task is not None, "the ticker was not started"
        self._stop.set()
        await self._task

    async def _run(self) -> None:
        clock = RunQueueClock()  # the loop's thread: this task runs on it
        try:
            last, waited = time.perf_counter(), clock.waited()
            while not self._stop.is_set():
                await asyncio.sleep(self.period)
                now, now_waited = time.perf_counter(), clock.waited()
                wall = now - last
                self.wall_gaps.append(wall)
                self.gaps.append(max(wall - (now_waited - waited), self.period))
                last, waited = now, now_waited
        finally:
            clock.close()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.stop()
