"""The manager keeps each scheduled queue's waiting count as messages come and go, so
summaries and /metrics read it instead of walking every queued id."""

from __future__ import annotations

import asyncio
import time

from kumocore.admin.summary import queue_summary, scheduled_counts
from kumocore.node.runtime import Runtime
from kumocore.queue.admin import parse_rule
from kumocore.queue.manager import QueueManager
from tests.admin.conftest import Enqueue, make_ready


def _walked(manager: QueueManager) -> dict[str, int]:
    """The count by definition: a queue's ids the scheduler still holds."""
    return {
        name: sum(1 for i in queue.ids if i in manager.scheduler)
        for name, queue in manager.scheduled.items()
    }


async def test_waiting_counts_follow_schedule_ready_forget_and_reschedule(
    runtime: Runtime, enqueue: Enqueue
) -> None:
    manager = runtime.services.queues
    a = [enqueue(f"u{n}@a.example") for n in range(4)]
    b = [enqueue(f"u{n}@b.example") for n in range(2)]
    assert scheduled_counts(manager) == {"a.example": 4, "b.example": 2} == _walked(manager)
    make_ready(manager, a[:2])  # moved on to a ready queue: no longer waiting
    assert scheduled_counts(manager) == {"a.example": 2, "b.example": 2} == _walked(manager)
    manager.schedule(a[2], time.time() + 60)  # rescheduling a waiting one counts it once
    manager.schedule(a[0], time.time() + 60)  # back from the ready queue: waiting again
    assert scheduled_counts(manager) == {"a.example": 3, "b.example": 2} == _walked(manager)
    for message in b:
        await manager.forget(message)
    # Emptied, it stays at 0 until its reap_interval has passed (kumocore.queue.queue_reaper).
    assert manager.scheduled["b.example"].ids == set()
    assert scheduled_counts(manager) == {"a.example": 3, "b.example": 0} == _walked(manager)
    summary = queue_summary(manager)
    assert summary["totals"]["messages"] == 4 == len(manager.messages)
    assert summary["totals"]["scheduled"] == 3
    assert [e["count"] for e in summary["scheduled"]] == [3, 0]


async def test_waiting_counts_drop_when_messages_fall_due_or_are_bounced(
    runtime: Runtime, enqueue: Enqueue
) -> None:
    manager = runtime.services.queues
    enqueue("late@c.example")
    due = enqueue("due@c.example")
    manager.schedule(due, time.time() - 1)
    deadline = time.monotonic() + 10
    while due.id in manager.scheduler and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    # Due: routed (the test pool is undefined, so it is rescheduled with a 451), and the
    # count matches the scheduler's view at every step.
    assert scheduled_counts(manager) == _walked(manager)
    manager.apply_bounce_rule(parse_rule({"reason": "stop", "domain": "c.example"}))
    await asyncio.sleep(0.05)
    assert scheduled_counts(manager).get("c.example", 0) == 0 == sum(_walked(manager).values())
