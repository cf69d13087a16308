"""A suspension over many queued messages: all of them come due at once, or all sit in
a ready queue when their scheduled queue is suspended.

Each such message is only logged and rescheduled: handling it never waits for anything,
so the routing workers (and a ready queue's connections) must let the event loop run
between batches, or every other connection of the node stalls until all are handled.
The ticker measures what another client would see (the longest gap between 1 ms ticks);
the collector's full passes over the test's many live objects are held off, since they
stall the loop for reasons of their own.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from kumocore.config import QueueConfig
from kumocore.mail.message import Message
from kumocore.queue.admin import parse_rule
from tests.queue.harness import Bench
from tests.support.ticker import LoopTicker

MESSAGES = 15_000


def suspend(bench: Bench) -> None:
    rule = parse_rule({"domain": "example.com", "reason": "pause", "duration": "1h"})
    bench.queues.add_suspension(rule)


async def insert(bench: Bench, count: int, due: float | None = None) -> None:
    store = bench.runtime.services.store
    assert store is not None
    config = QueueConfig.from_options(bench.policy.queue)
    for i in range(count):
        message = Message("a@src.test", f"u{i}@example.com", b"Subject: x\r\n\r\nhi\r\n")
        message.due = due
        await store.save(message)
        bench.queues.insert(message, "example.com", config)


@asynccontextmanager
async def loop_gaps() -> AsyncIterator[list[float]]:
    """The gaps between the ticks of a 1 ms ticker while the block runs."""
    gc.disable()
    try:
        async with LoopTicker() as ticker:
            yield ticker.gaps
    finally:
        gc.enable()


async def all_failed_once(bench: Bench) -> None:
    await bench.wait_until(
        lambda: len(bench.log_sink.of_type("TransientFailure")) >= MESSAGES, timeout=60
    )
    # Every message failed once (one record, one attempt), none was lost or sent.
    failures = bench.log_sink.of_type("TransientFailure")
    assert len({r["id"] for r in failures}) == len(failures) == MESSAGES
    assert all(m.num_attempts == 1 for m in (q.message for q in bench.queues.queued.values()))
    assert len(bench.queues.queued) == MESSAGES


async def test_many_due_messages_of_a_suspended_queue_do_not_stall_the_loop(
    make_bench: Any,
) -> None:
    bench = await make_bench(queue={"retry_interval": "1h"})
    suspend(bench)
    await insert(bench, MESSAGES, due=time.time() + 1.0)
    async with loop_gaps() as gaps:
        await all_failed_once(bench)
    assert bench.sink.messages == []
    # Routed all in one go, the loop stalled 150-400 ms at 10,000 messages.
    assert max(gaps) < 0.1, f"the loop stalled {max(gaps) * 1000:.0f} ms"


async def test_a_full_ready_queue_of_a_suspended_queue_does_not_stall_the_loop(
    make_bench: Any,
) -> None:
    bench = await make_bench(queue={"retry_interval": "1h"})
    await bench.inject("first@example.com")
    await bench.sink.wait_for(1)
    [path] = bench.queues.paths.values()
    path.suspend_until(time.time() + 3600)  # the ready queue fills while held
    await insert(bench, MESSAGES)
    await bench.wait_until(lambda: len(path) == MESSAGES, timeout=60)
    suspend(bench)
    async with loop_gaps() as gaps:
        path.suspend_until(0)  # its connections find every message's queue suspended
        await all_failed_once(bench)
    assert len(bench.sink.messages) == 1 and len(path) == 0
    # Deferred all in one take(), the loop stalled 450-800 ms at 10,000 messages.
    assert max(gaps) < 0.1, f"the loop stalled {max(gaps) * 1000:.0f} ms"
