"""EarliestDeadline: one timer, fired at the earliest deadline it was armed for."""

from __future__ import annotations

import asyncio


async def test_fires_once_at_the_earliest_of_several_deadlines() -> None:
    from kumocore.node.timers import EarliestDeadline

    loop = asyncio.get_running_loop()
    fired: list[float] = []
    timer = EarliestDeadline(lambda: fired.append(loop.time()))
    start = loop.time()
    timer.arm(loop, start + 0.2)
    timer.arm(loop, start + 0.05)  # earlier: replaces the pending one
    timer.arm(loop, start + 0.3)  # later: changes nothing
    await asyncio.sleep(0.4)
    assert len(fired) == 1
    assert start + 0.05 <= fired[0] < start + 0.2


async def test_can_be_armed_again_from_its_callback_and_cancelled() -> None:
    from kumocore.node.timers import EarliestDeadline

    loop = asyncio.get_running_loop()
    calls = 0

    def again() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            timer.arm(loop, loop.time() + 0.02)

    timer = EarliestDeadline(again)
    timer.arm(loop, loop.time() + 0.02)
    await asyncio.sleep(0.15)
    assert calls == 2
    timer.arm(loop, loop.time() + 0.02)
    timer.cancel()
    await asyncio.sleep(0.1)
    assert calls == 2
