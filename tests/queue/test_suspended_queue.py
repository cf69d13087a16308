"""A scheduled queue suspended by an operator (``/api/admin/suspend/v1``) on real queues.

As in KumoMTA (``insert_ready``): each time a message of the queue comes due it gets a
``TransientFailure`` record ``451 4.4.4 KumoMTA internal: scheduled queue is suspended:
<reason>`` whose site is the queue's name, counts an attempt and waits for its next retry
on the queue's schedule, so it can expire while held. Cancelling the suspension does not
wake the messages it deferred.
"""

from __future__ import annotations

import time
from typing import Any

from kumocore.queue.admin import parse_rule
from tests.queue.harness import Bench


def suspend(bench: Bench, reason: str = "maintenance", **match: str) -> str:
    rule = parse_rule({"domain": "example.com", "reason": reason, "duration": "1h", **match})
    bench.queues.add_suspension(rule)
    return rule.id


async def test_a_due_message_of_a_suspended_queue_gets_a_transient_failure_record(
    make_bench: Any,
) -> None:
    bench = await make_bench(queue={"retry_interval": "1h"})
    suspend(bench, reason="provider asked us to pause")
    message = await bench.inject("held@example.com")
    [record] = await bench.wait_for_records("TransientFailure", 1)
    assert record["id"] == message.id
    assert record["response"] == {
        "code": 451,
        "enhanced_code": {"class": 4, "subject": 4, "detail": 4},
        "content": "KumoMTA internal: scheduled queue is suspended: provider asked us to pause",
        "command": None,
    }
    # KumoMTA names the scheduled queue as the site, and no pool, source or peer.
    assert (record["queue"], record["site"]) == ("example.com", "example.com")
    assert record["egress_pool"] is None and record["egress_source"] is None
    assert record["peer_address"] is None
    assert record["num_attempts"] == 0  # the attempts before this one, as for any failure
    assert bench.sink.messages == []


async def test_a_suspended_queue_counts_an_attempt_and_retries_on_the_queue_schedule(
    make_bench: Any,
) -> None:
    bench = await make_bench(queue={"retry_interval": "1h"})
    suspend(bench, duration="10m")  # ends long before the retry: the retry time rules
    message = await bench.inject("held@example.com")
    await bench.wait_for_records("TransientFailure", 1)
    await bench.wait_until(lambda: bench.queues.scheduler.due_time(message.id) is not None)
    due = bench.queues.scheduler.due_time(message.id)
    assert message.num_attempts == 1
    # retry_interval 1h with KumoMTA's jitter (within 1h/20/2 = 90 s, capped at 30 s)
    assert due is not None and 3570 <= due - time.time() <= 3630
    stored = await bench.runtime.services.store.meta.get(message.id)
    assert stored is not None  # the attempt and due time are persisted, like any retry


async def test_cancelling_a_suspension_leaves_deferred_mail_on_its_retry_schedule(
    make_bench: Any,
) -> None:
    bench = await make_bench(queue={"retry_interval": "2s", "max_retry_interval": "2s"})
    rule_id = suspend(bench)
    message = await bench.inject("held@example.com")
    await bench.wait_for_records("TransientFailure", 1)
    retried_at = time.time() + 2
    assert bench.queues.cancel_suspension(rule_id)
    await bench.sink.wait_for(1, timeout=10)
    # Not released by the cancel: delivered at its retry, about 2 s after the failure.
    assert time.time() >= retried_at - 0.3
    [delivery] = await bench.wait_for_records("Delivery", 1)
    assert delivery["id"] == message.id and delivery["num_attempts"] == 1


async def test_a_message_held_by_a_suspension_expires_at_its_max_age(make_bench: Any) -> None:
    bench = await make_bench(
        queue={"retry_interval": "1s", "max_retry_interval": "1s", "max_age": "2500ms"}
    )
    suspend(bench)
    message = await bench.inject("held@example.com")
    [expired] = await bench.wait_for_records("Expiration", 1, timeout=10)
    assert expired["id"] == message.id
    assert expired["response"]["code"] == 551
    assert "exceeds max_age=2s 500ms" in expired["response"]["content"]
    failures = bench.log_sink.of_type("TransientFailure")
    assert [r["num_attempts"] for r in failures] == [0, 1, 2]
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert bench.sink.messages == []


async def test_a_suspension_of_another_queue_leaves_this_one_delivering(
    make_bench: Any,
) -> None:
    bench = await make_bench()
    suspend(bench, domain="other.example")
    await bench.inject("free@example.com")
    await bench.sink.wait_for(1)
    assert bench.log_sink.of_type("TransientFailure") == []


async def test_an_expired_suspension_no_longer_defers(make_bench: Any) -> None:
    bench = await make_bench()
    rule = parse_rule({"domain": "example.com", "reason": "short", "duration": "1s"})
    rule.expires = time.time() - 1  # lapsed: pruned when next asked
    bench.queues.add_suspension(rule)
    await bench.inject("free@example.com")
    await bench.sink.wait_for(1)
    assert bench.log_sink.of_type("TransientFailure") == []
    assert bench.queues.admin.list_suspensions() == []
