from __future__ import annotations

import asyncio
import time

import pytest

from kumocore.logs.dispatch import LogDispatcher
from tests.core.logs.fakes import RecordingSink, record


async def wait_for(predicate: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_every_sink_gets_every_record_in_submission_order() -> None:
    a, b = RecordingSink("a"), RecordingSink("b")
    dispatcher = LogDispatcher([a, b], batch_latency=0.01)
    await dispatcher.start()
    records = [record(queue=f"q{i}") for i in range(25)]
    for rec in records:
        dispatcher.submit(rec)
    await dispatcher.close()
    assert a.records == records and b.records == records
    assert dispatcher.stats()["a"] == {"submitted": 25, "written": 25, "dropped": 0,
                                       "errors": 0, "failed": 0, "shed": 0, "filtered": 0,
                                       "pending": 0}


async def test_records_are_written_in_batches_of_at_most_batch_size() -> None:
    sink = RecordingSink(batch_size=4)
    dispatcher = LogDispatcher([sink], batch_size=100, batch_latency=0.05)
    for _ in range(10):
        dispatcher.submit(record())
    await dispatcher.start()
    await dispatcher.close()
    assert [len(b) for b in sink.batches] == [4, 4, 2]  # the sink's own batch_size wins


async def test_a_partial_batch_is_written_after_the_batch_latency() -> None:
    sink = RecordingSink()
    dispatcher = LogDispatcher([sink], batch_size=1000, batch_latency=0.02)
    await dispatcher.start()
    dispatcher.submit(record())
    await wait_for(lambda: len(sink.records) == 1, timeout=1.0)
    await dispatcher.close()


@pytest.mark.serial  # 5,000 submits in 1 s: not with other workers
async def test_slow_sink_does_not_block_submit_nor_the_other_sinks() -> None:
    gate = asyncio.Event()
    slow, fast = RecordingSink("slow", gate=gate), RecordingSink("fast")
    dispatcher = LogDispatcher([slow, fast], batch_latency=0.001)
    await dispatcher.start()
    started = time.perf_counter()
    for _ in range(5000):
        dispatcher.submit(record())
    assert time.perf_counter() - started < 1.0  # synchronous, O(1) per sink
    await wait_for(lambda: len(fast.records) == 5000)
    assert slow.records == []
    gate.set()
    await dispatcher.close()
    assert len(slow.records) == 5000


async def test_full_buffer_never_drops_message_records_and_sheds_only_rejections() -> None:
    from structlog.testing import capture_logs

    from kumocore.logs.record import RecordType

    gate = asyncio.Event()
    slow, fast = RecordingSink("slow", gate=gate, buffer_size=10), RecordingSink("fast")
    dispatcher = LogDispatcher([slow, fast], batch_size=5, batch_latency=0)
    await dispatcher.start()
    await asyncio.sleep(0)
    with capture_logs() as logs:
        for _ in range(30):
            dispatcher.submit(record(RecordType.Reception))
            dispatcher.submit(record(RecordType.Rejection))
            await asyncio.sleep(0)  # let the drain tasks take what they can
        stats = dispatcher.stats()
        assert stats["slow"]["dropped"] == 0
        assert stats["slow"]["shed"] > 0  # rejections over the bound only
        assert stats["fast"]["shed"] == 0 and stats["fast"]["dropped"] == 0
        assert not dispatcher.has_room()
        gate.set()
        await dispatcher.close()
    stats = dispatcher.stats()
    kinds = [r.type for r in slow.records]
    assert kinds.count(RecordType.Reception) == 30  # every message record written
    assert kinds.count(RecordType.Rejection) == 30 - stats["slow"]["shed"]
    assert len(fast.records) == 60
    shed_lines = [e for e in logs if e["event"] == "log backlog full: rejection records shed"]
    assert sum(e["shed"] for e in shed_lines) == stats["slow"]["shed"]


async def test_room_waits_until_the_backlog_drains_and_times_out_while_stuck() -> None:
    gate = asyncio.Event()
    sink = RecordingSink("slow", gate=gate, buffer_size=4)
    dispatcher = LogDispatcher([sink], batch_size=2, batch_latency=0)
    await dispatcher.start()
    for _ in range(6):
        dispatcher.submit(record())
    assert await dispatcher.room(timeout=0.05) is False  # stuck sink: intake refuses
    waiter = asyncio.create_task(dispatcher.room(timeout=5))
    await asyncio.sleep(0.02)
    assert not waiter.done()
    gate.set()
    assert await waiter is True
    await dispatcher.close()
    assert len(sink.records) == 6


async def test_failed_batches_are_retried_until_written_and_only_then_confirmed() -> None:
    from structlog.testing import capture_logs

    bad, good = RecordingSink("bad", fail_times=3), RecordingSink("good")
    dispatcher = LogDispatcher([bad, good], batch_latency=0)
    await dispatcher.start()
    with capture_logs() as logs:
        tickets = [dispatcher.submit(record()) for _ in range(3)]
        assert await dispatcher.written(tickets[0], timeout=0.02) is False  # still failing
        for ticket in tickets:
            assert await dispatcher.written(ticket, timeout=5) is True
        await dispatcher.close()
    stats = dispatcher.stats()
    assert stats["bad"]["errors"] == 3 and stats["bad"]["written"] == 3
    assert len(bad.records) == 3 and stats["bad"]["dropped"] == 0
    assert stats["good"]["written"] == 3
    assert any(e.get("sink") == "bad" and e["log_level"] == "error" for e in logs)


async def test_a_record_never_written_is_not_confirmed_and_counts_as_dropped_at_close() -> None:
    bad = RecordingSink("bad", fail=True)
    dispatcher = LogDispatcher([bad], batch_latency=0)
    await dispatcher.start()
    ticket = dispatcher.submit(record())
    waiter = asyncio.create_task(dispatcher.written(ticket, timeout=30))
    await dispatcher.close(timeout=0.2)
    assert await waiter is False  # the queue keeps such a message spooled
    assert dispatcher.stats()["bad"]["dropped"] == 1


async def test_close_drains_pending_records_and_closes_every_sink_once() -> None:
    sink = RecordingSink()
    dispatcher = LogDispatcher([sink], batch_latency=10.0)  # only close flushes this batch
    await dispatcher.start()
    dispatcher.submit(record())
    await dispatcher.close(timeout=2.0)
    await dispatcher.close()
    assert len(sink.records) == 1 and sink.closed == 1


async def test_close_timeout_counts_stuck_records_as_dropped() -> None:
    stuck = RecordingSink("stuck", gate=asyncio.Event())
    dispatcher = LogDispatcher([stuck], batch_size=2, batch_latency=0)
    await dispatcher.start()
    for _ in range(5):
        dispatcher.submit(record())
    await dispatcher.close(timeout=0.1)
    stats = dispatcher.stats()["stuck"]
    assert stats["dropped"] == 5 and stats["pending"] == 0 and stuck.closed == 1


async def test_records_submitted_after_close_are_dropped() -> None:
    sink = RecordingSink()
    dispatcher = LogDispatcher([sink])
    await dispatcher.close()
    dispatcher.submit(record())
    assert dispatcher.stats()["recording"]["dropped"] == 1


async def test_header_names_is_the_union_of_what_sinks_select() -> None:
    dispatcher = LogDispatcher([
        RecordingSink("a", header_names=("Subject", "X-*")),
        RecordingSink("b", header_names=["X-*", "To"]),
        RecordingSink("c"),
    ])
    assert dispatcher.header_names == ("Subject", "X-*", "To")


def test_duplicate_sink_names_and_bad_sink_attributes_are_refused() -> None:
    with pytest.raises(ValueError, match="'a'"):
        LogDispatcher([RecordingSink("a"), RecordingSink("a")])
    with pytest.raises(TypeError, match="buffer_size"):
        LogDispatcher([RecordingSink("a", buffer_size=0)])
    with pytest.raises(TypeError, match="header_names"):
        LogDispatcher([RecordingSink("a", header_names="Subject")])


async def test_written_waits_until_every_sink_was_handed_the_record() -> None:
    gate = asyncio.Event()
    fast, slow = RecordingSink("fast"), RecordingSink("slow", gate=gate)
    dispatcher = LogDispatcher([fast, slow], batch_latency=0)
    await dispatcher.start()
    waiter = asyncio.create_task(dispatcher.written(dispatcher.submit(record()), timeout=5))
    await wait_for(lambda: len(fast.records) == 1)
    await asyncio.sleep(0.02)
    assert not waiter.done()  # the slow sink has not taken it yet
    gate.set()
    assert await waiter is True
    assert await dispatcher.written(dispatcher.submit(record()), timeout=5) is True
    await dispatcher.close()


async def test_written_gives_up_at_each_waiters_own_deadline() -> None:
    gate = asyncio.Event()  # never set until the end: the sink is stuck
    dispatcher = LogDispatcher([RecordingSink("stuck", gate=gate)], batch_latency=0)
    await dispatcher.start()
    started = time.monotonic()
    long_wait = asyncio.create_task(dispatcher.written(dispatcher.submit(record()), timeout=0.3))
    await asyncio.sleep(0)
    short_wait = asyncio.create_task(dispatcher.written(dispatcher.submit(record()), timeout=0.05))
    assert await short_wait is False  # its deadline is earlier than the watch already armed
    assert time.monotonic() - started < 0.25
    assert not long_wait.done()  # woken with it, but its own deadline is still ahead
    assert await long_wait is False
    assert time.monotonic() - started >= 0.29
    gate.set()
    await dispatcher.close()


async def test_written_after_a_timed_out_wait_still_sees_later_progress() -> None:
    gate = asyncio.Event()
    sink = RecordingSink("late", gate=gate)
    dispatcher = LogDispatcher([sink], batch_latency=0)
    await dispatcher.start()
    ticket = dispatcher.submit(record())
    assert await dispatcher.written(ticket, timeout=0.02) is False
    asyncio.get_running_loop().call_later(0.05, gate.set)
    assert await dispatcher.written(ticket, timeout=2) is True
    await dispatcher.close()
