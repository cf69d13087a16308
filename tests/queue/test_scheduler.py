"""The scheduler keeps each message's due time on its one record, not in a map of its own."""

from __future__ import annotations

import asyncio
import time

from kumocore.mail.message import Message
from kumocore.queue.queued import Queued
from kumocore.queue.schedule import Scheduler


def _records(count: int) -> dict[str, Queued]:
    messages = [Message("a@x.test", f"r{n}@y.test", b"x") for n in range(count)]
    return {message.id: Queued(message, None) for message in messages}


async def test_a_rescheduled_record_fires_once_at_its_latest_time_and_a_cancelled_one_never(
) -> None:
    records = _records(3)
    fired: list[Queued] = []
    scheduler: Scheduler[Queued] = Scheduler(fired.append, records.get)
    early, moved, cancelled = records.values()
    now = time.time()
    scheduler.schedule(early, now)
    scheduler.schedule(moved, now)
    scheduler.schedule(moved, now + 0.3)  # its earlier heap entry is now stale
    scheduler.schedule(cancelled, now)
    assert len(scheduler) == 3 and moved.message.id in scheduler
    assert scheduler.due_time(moved.message.id) == now + 0.3
    assert scheduler.cancel(cancelled) and not scheduler.cancel(cancelled)
    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while len(fired) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # a stale or cancelled entry would have fired by now
    finally:
        await scheduler.stop()
    assert fired == [early, moved]
    assert len(scheduler) == 0 and early.due is None and moved.due is None
    assert not early.waiting and moved.message.id not in scheduler
