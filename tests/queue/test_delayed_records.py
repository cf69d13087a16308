"""KumoMTA's ``Delayed`` records on a real node, read back from its local log files.

A message that goes (back) into its scheduled queue to wait for a later due time gets a
``Delayed`` record — ``400``, no enhanced code, ``Context: <reasons>. Next due in
<humantime> at <chrono UTC time>``, no site, pool or source — unless it was only loaded
from the spool or a ``TransientFailure`` record already explains the wait. One test per
kind of delay kumocore has.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore.mail.internal_responses import chrono_utc
from kumocore.queue import delays as delays_module
from tests.queue.delayed_support import (
    assert_delayed_record,
    future,
    policy,
    records,
    rfc3339,
    start,
    wait_for_records,
)


async def test_a_message_scheduled_for_later_at_reception_is_logged_delayed(
    tmp_path: Path,
) -> None:
    due, stamp = future(3600)
    logs = tmp_path / "logs"
    node = await start(
        tmp_path,
        policy(
            logs,
            extra=f"""
kumo.on('smtp_server_message_received', function(msg)
  msg:set_scheduling {{ first_attempt = '{stamp}' }}
end)""",
        ),
    )
    try:
        await node.send(recipients="later@example.com")
        [record] = await wait_for_records(logs, "Delayed")
    finally:
        await node.stop()
    assert_delayed_record(record, context="Received, ScheduledForLater", due=due,
                          at=stamp, queue="example.com")  # fmt: skip
    assert record["recipient"] == "later@example.com" and record["num_attempts"] == 0
    assert record["reception_protocol"] == "ESMTP"
    assert node.sink is not None and node.sink.messages == []


async def test_a_due_time_set_at_reception_without_a_schedule_is_received_only(
    tmp_path: Path,
) -> None:
    due, stamp = future(7200)
    logs = tmp_path / "logs"
    node = await start(
        tmp_path,
        policy(
            logs,
            extra=f"""
kumo.on('smtp_server_message_received', function(msg)
  msg:set_due '{stamp}'
end)""",
        ),
    )
    try:
        await node.send(recipients="due@example.com")
        [record] = await wait_for_records(logs, "Delayed")
    finally:
        await node.stop()
    # ScheduledForLater only when the message has a schedule (msg:set_scheduling)
    assert_delayed_record(record, context="Received", due=due, at=stamp, queue="example.com")


async def test_throttle_insert_ready_queue_sends_the_message_back_with_a_delayed_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As KumoMTA: requeued without a delay of its own, the message is re-timed with the
    # 0-59 s jitter (here 7 s), not left until the time the event set (30 min).
    monkeypatch.setattr(delays_module, "drop_delay", lambda: 7)
    _, stamp = future(1800)
    logs = tmp_path / "logs"
    node = await start(
        tmp_path,
        policy(
            logs,
            extra=f"""
kumo.on('throttle_insert_ready_queue', function(msg)
  msg:set_due '{stamp}'
end)
kumo.on('requeue_message', function(msg, response, context, increment, delay)
  -- delay: a kumo.time TimeDelta, as KumoMTA passes (or nil)
  msg:set_meta('seen', string.format('%s|%s|%s|%s', response, table.concat(context, ','),
    tostring(increment), delay and string.format('%d', delay.seconds) or 'nil'))
end)""",
        ),
    )
    try:
        await node.send(recipients="throttled@example.com")
        [record] = await wait_for_records(logs, "Delayed")
        [waiting] = node.runtime.services.queues.queued.values()
        due = waiting.due
    finally:
        await node.stop()
    assert due is not None
    assert_delayed_record(record, context="Received, ThrottledByThrottleInsertReadyQueue",
                          due=due, at=chrono_utc(due), queue="example.com")  # fmt: skip
    assert 6.9 <= due - rfc3339(record["event_time"]) <= 7.0
    # As KumoMTA: requeue_message ran first, told why, without an attempt or a delay.
    assert record["meta"]["seen"] == (
        "451 4.4.4 KumoMTA internal: example.com throttle_insert_ready_queue event "
        f"throttled message rate, due={stamp}|Received,ThrottledByThrottleInsertReadyQueue"
        "|false|nil"
    )
    assert records(logs, "TransientFailure") == []


async def test_the_queue_message_rate_sends_the_message_back_with_a_delayed_record(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    node = await start(
        tmp_path,
        policy(
            logs,
            queue="max_message_rate = '1/h'",
            extra="""
kumo.on('requeue_message', function(msg, response, context, increment, delay)
  -- delay: a kumo.time TimeDelta, as KumoMTA passes (or nil)
  msg:set_meta('seen', string.format('%s|%s|%s|%s', response, table.concat(context, ','),
    tostring(increment), delay and string.format('%d', delay.seconds) or 'nil'))
end)""",
        ),
    )
    try:
        await node.send(recipients="first@example.com")
        assert node.sink is not None
        await node.sink.wait_for(1)
        await node.send(recipients="second@example.com")
        [record] = await wait_for_records(logs, "Delayed")
        queued = node.runtime.services.queues.queued
        [(message_id, waiting)] = [(i, q) for i, q in queued.items() if q.due is not None]
        due = waiting.due
    finally:
        await node.stop()
    assert record["id"] == message_id and due is not None
    assert_delayed_record(record, context="Received, MessageRateThrottle", due=due,
                          at=chrono_utc(due), queue="example.com")  # fmt: skip
    assert 3590 <= due - rfc3339(record["event_time"]) <= 3600  # the throttle's whole hour
    assert record["meta"]["seen"] == (
        "451 4.4.4 KumoMTA internal: example.com throttled message rate, "
        "delay=TimeDelta { secs: 3600, nanos: 0 }|Received,MessageRateThrottle|false|3600"
    )
    assert records(logs, "TransientFailure") == []


async def test_a_message_requeue_message_rebinds_at_the_queue_rate_is_not_delayed(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    node = await start(
        tmp_path,
        policy(
            logs,
            queue="max_message_rate = '1/h'",
            extra="""
kumo.on('requeue_message', function(msg, response, context, increment, delay)
  msg:set_meta('queue', 'elsewhere.example')
end)""",
        ),
    )
    try:
        await node.send(recipients="first@example.com")
        assert node.sink is not None
        await node.sink.wait_for(1)
        await node.send(recipients="second@example.com")
        await node.sink.wait_for(2)
        [delivery] = [r for r in await wait_for_records(logs, "Delivery", 2)
                      if r["recipient"] == "second@example.com"]  # fmt: skip
    finally:
        await node.stop()
    # Moved to another queue (its own rate), due at once, one attempt counted: no wait.
    assert delivery["queue"] == "elsewhere.example" and delivery["num_attempts"] == 1
    assert records(logs, "Delayed") == []


async def test_a_wait_explained_by_a_transient_failure_has_no_delayed_record(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    node = await start(tmp_path, policy(logs))
    try:
        await node.hold("maintenance")  # a suspended scheduled queue: a TransientFailure
        await node.send(recipients="held@example.com")
        [failure] = await wait_for_records(logs, "TransientFailure")
    finally:
        await node.stop()
    assert failure["response"]["content"] == (
        "KumoMTA internal: scheduled queue is suspended: maintenance"
    )
    assert records(logs, "Delayed") == []


async def test_a_message_due_at_once_pays_nothing_for_delayed_records(tmp_path: Path) -> None:
    # Reception and routing of a message due at once run none of the Delayed code
    # (measured against the code before it: the same Python calls, 61 and 42).
    import sys
    from types import FrameType
    from typing import Any

    from kumocore.mail.message import Message
    from kumocore.testing import Node

    called: list[str] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if event == "call" and (
            code.co_filename.endswith("insert_context.py")
            or code.co_name in ("delayed", "delay", "log_delayed", "requeue")
        ):
            called.append(code.co_name)

    node = await Node(listen=False, tmp_path=tmp_path).start()
    try:
        services = node.runtime.services
        for n in range(3):
            message = Message("a@src.test", f"r{n}@example.com", b"Subject: t\r\n\r\nhi\r\n")
            sys.setprofile(profile)
            try:
                await services.intake.accept([message], reception_protocol="ESMTP")
                services.queues.routing.clear()  # routed here, by hand
                await services.queues.router.route(message)
            finally:
                sys.setprofile(None)
        assert node.sink is not None
        await node.sink.wait_for(3)
    finally:
        await node.stop()
    assert called == []


def test_the_delayed_text_prints_times_as_kumomta_prints_them() -> None:
    from kumocore.mail.internal_responses import delayed

    # chrono's debug form of a UTC time: the fraction in 3, 6 or 9 digits, none when whole
    assert chrono_utc(0) == "1970-01-01T00:00:00Z"
    assert chrono_utc(1.5) == "1970-01-01T00:00:01.500Z"
    assert chrono_utc(1.000001) == "1970-01-01T00:00:01.000001Z"
    response = delayed("DueTimeWasReached, MessageRateThrottle", 100.5, 40.0)
    assert (response.code, response.enhanced_code) == (400, None)
    assert response.content == (
        "Context: DueTimeWasReached, MessageRateThrottle. "
        "Next due in 1m 500ms at 1970-01-01T00:01:40.500Z"
    )
    assert delayed("Received", 10.0, 11.0).content == (  # already due: no negative wait
        "Context: Received. Next due in 0s at 1970-01-01T00:00:10Z"
    )


def test_an_insert_context_repeats_no_reason_and_skips_spool_loads_and_failures() -> None:
    from kumocore.queue import insert_context as ctx

    assert ctx.note(ctx.RECEIVED, "Received") == ("Received",)  # never twice in a row
    assert ctx.note(ctx.RECEIVED, "MessageRateThrottle") == ("Received", "MessageRateThrottle")
    assert not ctx.logs_delay(ctx.ENUMERATED)
    assert ctx.logs_delay(ctx.note(ctx.ENUMERATED, "MessageRateThrottle"))
    assert not ctx.logs_delay(ctx.note(ctx.LOGGED_TRANSIENT_FAILURE, "MessageRateThrottle"))
    scheduled = {"kumocore_scheduling": {"first_attempt": "2030-01-01T00:00:00Z"}}
    assert ctx.with_schedule(ctx.RECEIVED, scheduled) == ("Received", "ScheduledForLater")
    assert ctx.with_schedule(ctx.RECEIVED, {}) == ("Received",)
    assert ctx.with_schedule(ctx.DUE_TIME_WAS_REACHED, scheduled) == ("DueTimeWasReached",)
