"""KumoMTA's ``total_qmaint_runs`` in kumocore: the scheduler counts each pass over its
due records (``Scheduler.runs``): one as it starts, and one per wake-up after that."""

from __future__ import annotations

import asyncio
import time

from kumocore.mail.message import Message
from kumocore.queue.queued import Queued
from kumocore.queue.schedule import Scheduler


async def test_each_wake_up_of_the_scheduler_is_one_run() -> None:
    message = Message("a@x.test", "r@y.test", b"x")
    records = {message.id: Queued(message, None)}
    fired: list[Queued] = []
    scheduler: Scheduler[Queued] = Scheduler(fired.append, records.get)
    scheduler.start()
    try:
        await asyncio.sleep(0.01)
        assert scheduler.runs == 1  # started, nothing scheduled: asleep until woken
        scheduler.schedule(records[message.id], time.time() + 0.05)  # wakes it (earlier)
        deadline = time.monotonic() + 5
        while not fired and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
    finally:
        await scheduler.stop()
    assert len(fired) == 1
    # The start, the new due time, the due time reached (a timer that ran a tick early
    # adds one more pass).
    assert scheduler.runs >= 3
