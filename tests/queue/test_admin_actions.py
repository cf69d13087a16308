"""Admin bounce and suspension acting on real queues."""

from __future__ import annotations

from kumocore.queue.admin import parse_rule


async def test_admin_bounce_logs_admin_bounce_and_removes_matching_messages(make_bench) -> None:
    bench = await make_bench(queue={"egress_pool": "nowhere", "retry_interval": "1h"})
    rule = parse_rule({"domain": "example.com", "reason": "purge"})
    bench.queues.apply_bounce_rule(rule)
    message = await bench.inject("late@example.com")  # the rule stays active for new mail
    records = await bench.wait_for_records("AdminBounce", 1)
    assert records[0]["id"] == message.id
    assert "purge" in records[0]["response"]["content"]
    await bench.wait_until(lambda: bench.spooled() == 0)


async def test_admin_bounce_with_suppress_logging_removes_without_a_record(make_bench) -> None:
    bench = await make_bench()
    rule = parse_rule({"domain": "example.com", "reason": "quiet", "suppress_logging": True})
    bench.queues.apply_bounce_rule(rule)
    await bench.inject("gone@example.com")
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert bench.log_sink.of_type("AdminBounce") == []
    assert bench.queues.outcomes.counters["admin_bounced"] == 1


async def test_suspended_queue_defers_mail_until_a_retry_after_the_suspension_ends(
    make_bench,
) -> None:
    bench = await make_bench(queue={"retry_interval": "1s", "max_retry_interval": "1s"})
    rule = parse_rule({"domain": "example.com", "reason": "maintenance", "duration": "1h"})
    bench.queues.add_suspension(rule)
    await bench.inject("held@example.com")
    await bench.wait_for_records("TransientFailure", 2)  # deferred at each retry
    assert bench.sink.messages == []
    assert bench.queues.cancel_suspension(rule.id)
    await bench.sink.wait_for(1)  # at its next retry (tests/queue/test_suspended_queue.py)
