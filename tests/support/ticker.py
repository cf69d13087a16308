"""A 1 ms sleeper on the running event loop, for the tests that check work does not stall
the loop: the longest gap between its wake-ups is what another client on the same loop
would have waited.

    async with LoopTicker() as ticker:
        await work()
    assert ticker.longest < 0.1

``longest`` may be read while it runs (a fixture can keep one going for a whole test);
``start()`` and ``await stop()`` are the same as entering and leaving the ``async with``.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Self

PERIOD = 0.001


class LoopTicker:
    """Sleeps ``period`` seconds at a time on the running loop and keeps every gap between
    two wake-ups (the sleep included: a gap never falls below ``period``)."""

    def __init__(self, period: float = PERIOD) -> None:
        self.period = period
        self.gaps: list[float] = []
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
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stops after one more wake-up, so that a stall still going on when the measured
        work ended is counted too (cancelling would drop that last gap)."""
        assert self._task is not None, "the ticker was not started"
        self._stop.set()
        await self._task

    async def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            await asyncio.sleep(self.period)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

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
