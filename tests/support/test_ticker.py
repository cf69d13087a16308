"""The loop ticker the stall tests share sees a stall, and only a stall."""

from __future__ import annotations

import asyncio
import time

from tests.support.ticker import LoopTicker


async def test_a_blocking_call_on_the_loop_is_measured_as_the_longest_gap() -> None:
    async with LoopTicker() as ticker:
        await asyncio.sleep(0.01)
        time.sleep(0.08)  # the stall being measured
        await asyncio.sleep(0.01)
    assert 0.08 <= ticker.longest < 0.5
    assert ticker.longest_overrun == ticker.longest - ticker.period


async def test_a_stall_still_going_on_when_the_work_ends_is_counted() -> None:
    ticker = LoopTicker()
    ticker.start()
    await asyncio.sleep(0.01)
    time.sleep(0.05)  # ends the measured work: no await after it
    await ticker.stop()
    assert ticker.longest >= 0.05


async def test_the_longest_gap_can_be_read_while_it_runs() -> None:
    ticker = LoopTicker()
    assert ticker.longest == 0.0
    ticker.start()
    await asyncio.sleep(0.01)
    time.sleep(0.03)
    await asyncio.sleep(0.01)
    assert ticker.longest >= 0.03
    await ticker.stop()
