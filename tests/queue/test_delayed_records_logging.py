"""Where ``Delayed`` records go, on a real node: not again for a message only reloaded from
the spool at a restart (KumoMTA's ``Enumerated``), into the local logs as
``per_record`` says, and to a log hook that enables them, as KumoMTA sends them."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.queue.delayed_support import future, policy, records, start, wait_for_records

SCHEDULE = """
kumo.on('smtp_server_message_received', function(msg)
  msg:set_scheduling {{ first_attempt = '{stamp}' }}
end)"""


async def test_a_waiting_message_reloaded_at_a_restart_is_not_logged_delayed_again(
    tmp_path: Path,
) -> None:
    _, stamp = future(3600)
    logs = tmp_path / "logs"
    text = policy(logs, extra=SCHEDULE.format(stamp=stamp))
    node = await start(tmp_path, text, spool="rocksdb")
    try:
        await node.send(recipients="later@example.com")
        await wait_for_records(logs, "Delayed")
    finally:
        await node.stop()
    again = await start(tmp_path, text, spool="rocksdb")
    try:
        queues = again.runtime.services.queues
        assert len(queues.queued) == 1  # reloaded, and waiting again
        [record] = queues.queued.values()
        assert record.due is not None and record.context == ("Enumerated",)
    finally:
        await again.stop()
    assert len(records(logs, "Delayed")) == 1


async def test_per_record_sends_delayed_records_to_their_own_segments(tmp_path: Path) -> None:
    _, stamp = future(3600)
    logs, delayed = tmp_path / "logs", tmp_path / "delayed"
    node = await start(
        tmp_path,
        policy(
            logs,
            extra=SCHEDULE.format(stamp=stamp),
            local_logs=f"per_record = {{ Delayed = {{ log_dir = '{delayed}' }} }},",
        ),
    )
    try:
        await node.send(recipients="later@example.com")
        [record] = await wait_for_records(delayed, "Delayed")
        await wait_for_records(logs, "Reception")
    finally:
        await node.stop()
    assert record["recipient"] == "later@example.com"
    assert records(logs, "Delayed") == []  # only in their own directory


async def test_per_record_can_leave_delayed_records_out(tmp_path: Path) -> None:
    _, stamp = future(3600)
    logs = tmp_path / "logs"
    node = await start(
        tmp_path,
        policy(
            logs,
            extra=SCHEDULE.format(stamp=stamp),
            local_logs="per_record = { Delayed = { enable = false } },",
        ),
    )
    try:
        await node.send(recipients="later@example.com")
        await wait_for_records(logs, "Reception")
        queues = node.runtime.services.queues
        assert [q.due is not None for q in queues.queued.values()] == [True]
    finally:
        await node.stop()
    assert records(logs, "Delayed") == []


async def test_a_log_hook_that_enables_delayed_records_receives_them(tmp_path: Path) -> None:
    _, stamp = future(3600)
    logs = tmp_path / "logs"
    hook = """
kumo.on('should_enqueue_log_record', function(msg, hook_name)
  msg:set_meta('queue', 'hook.example')
  return true
end)"""
    node = await start(
        tmp_path,
        policy(
            logs,
            extra=SCHEDULE.format(stamp=stamp) + hook,
            init="kumo.configure_log_hook { name = 'delays', "
            "per_record = { Any = { enable = false }, Delayed = { enable = true } } }",
        ),
    )
    try:
        await node.send(recipients="later@example.com")
        assert node.sink is not None
        [hooked] = await node.sink.wait_for(1)
        await wait_for_records(logs, "Delivery")
    finally:
        await node.stop()
    body = hooked.data.split(b"\r\n\r\n", 1)[-1] if b"\r\n\r\n" in hooked.data else hooked.data
    sent = orjson.loads(body)
    assert sent["type"] == "Delayed" and sent["recipient"] == "later@example.com"
    assert sent["response"]["content"].startswith("Context: Received, ScheduledForLater. ")
