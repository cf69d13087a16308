"""The loop ticker the stall tests share sees a stall, and only a stall."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest

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


async def test_time_spent_waiting_for_a_cpu_taken_by_another_process_is_not_a_stall() -> None:
    # A real-time busy process on this thread's only CPU holds it for 0.2 s: the loop is
    # ready to run all that time, which is the machine's load, not the code's.
    if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/schedstat"):
        pytest.skip("this kernel does not report per-thread run-queue waits")
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    hog = "import time\nend = time.monotonic() + 0.2\nwhile time.monotonic() < end: pass\n"
    os.sched_setaffinity(0, {cpu})
    try:
        async with LoopTicker() as ticker:
            await asyncio.sleep(0.02)
            try:
                process = subprocess.Popen(
                    ["chrt", "-f", "1", "taskset", "-c", str(cpu), sys.executable, "-c", hog],
                    stderr=subprocess.PIPE,
                )
            except FileNotFoundError:
                pytest.skip("chrt/taskset are not installed")
            while process.poll() is None:
                await asyncio.sleep(0.001)
            _, errors = process.communicate()
            if process.returncode != 0:
                pytest.skip(f"no real-time priority here: {errors!r}")
            await asyncio.sleep(0.02)
    finally:
        os.sched_setaffinity(0, before)
    assert max(ticker.wall_gaps) >= 0.15  # the loop did wait for its CPU
    assert ticker.longest < 0.05
