"""A scheduled queue's ``max_message_rate`` on real queues, as KumoMTA's ``insert_ready``
applies it: a message over the rate waits the throttle's whole seconds, without jitter,
without an attempt counted and with a ``Delayed`` record only (its text is checked in
test_delayed_records.py), and expires if that wait would take it past its ``max_age``."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from kumocore.queue.queue_rate import FALLBACK_DELAY, whole_seconds


@pytest.mark.parametrize(
    ("retry_after", "seconds"),
    [(0.0, 0), (0.0009, 0), (0.001, 1), (0.4, 1), (1.0, 1), (1.2, 2), (math.inf, 60)],
)
def test_a_wait_is_given_in_whole_seconds_as_kumomta_throttles_give_it(
    retry_after: float, seconds: int
) -> None:
    assert whole_seconds(retry_after) == seconds
    assert FALLBACK_DELAY == 60


async def test_messages_over_the_queue_rate_wait_whole_seconds_without_an_attempt(
    make_bench: Any,
) -> None:
    bench = await make_bench(queue={"max_message_rate": "1/s"})
    first = await bench.inject("one@example.com")
    await bench.sink.wait_for(1)
    second = await bench.inject("two@example.com")
    await bench.wait_until(lambda: bench.queues.scheduler.due_time(second.id) is not None)
    waited = (bench.queues.scheduler.due_time(second.id) or 0) - time.time()
    assert 0.7 <= waited <= 1.0  # one whole second from the refusal, no jitter
    record = bench.queues.record_of(second)
    assert record is not None and record.last_response == (
        "451 4.4.4 KumoMTA internal: example.com throttled message rate, "
        "delay=TimeDelta { secs: 1, nanos: 0 }"
    )
    assert second.num_attempts == 0
    await bench.sink.wait_for(2)
    deliveries = await bench.wait_for_records("Delivery", 2)
    assert {d["id"]: d["num_attempts"] for d in deliveries} == {first.id: 0, second.id: 0}
    assert bench.log_sink.of_type("TransientFailure") == []


async def test_the_queue_rate_spaces_a_burst_of_messages_out(make_bench: Any) -> None:
    bench = await make_bench(queue={"max_message_rate": "2/s"})
    started = time.monotonic()
    for n in range(5):
        await bench.inject(f"r{n}@example.com")
    await bench.sink.wait_for(5, timeout=15)
    # 2 at once (the burst), then one per half second, rounded up to whole seconds
    assert time.monotonic() - started >= 1.8
    assert bench.log_sink.of_type("TransientFailure") == []


async def test_a_message_the_queue_rate_would_hold_past_its_max_age_expires(
    make_bench: Any,
) -> None:
    bench = await make_bench(queue={"max_message_rate": "1/10s", "max_age": "1500ms"})
    await bench.inject("first@example.com")
    await bench.sink.wait_for(1)
    late = await bench.inject("late@example.com")  # would wait 10 s: past its 1.5 s
    [expired] = await bench.wait_for_records("Expiration", 1)
    assert expired["id"] == late.id and expired["response"]["code"] == 551
    content = expired["response"]["content"]
    assert content.startswith("Next delivery time PT10") and content.endswith(" > PT1.5S")
    await bench.wait_until(lambda: bench.spooled() == 0)


async def test_another_queue_is_not_held_by_this_queue_rate(make_bench: Any) -> None:
    bench = await make_bench(queue={"max_message_rate": "1/min"})
    await bench.inject("one@example.com")
    await bench.inject("two@other.example")  # its own throttle, with its own budget
    await bench.sink.wait_for(2)
