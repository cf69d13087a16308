"""KumoMTA's ``delayed_due_to_message_rate_throttle`` and
``delayed_due_to_throttle_insert_ready`` counters: routing counts, per scheduled queue,
the due messages a queue rate or the ``throttle_insert_ready_queue`` event sent back to
wait (real node, Lua policy, the node's ``/metrics``), and a reaped queue's series go
(``delayed_due_to_ready_queue_full``'s too: tests/queue/test_ready_full.py counts it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore.config import QueueConfig
from kumocore.queue import delays as delays_module
from kumocore.queue.delay_counts import DelayCounts
from kumocore.queue.queue_reaper import QueueReaper
from kumocore.queue.schedule import ScheduledQueue
from tests.queue.delayed_support import future, policy, start, wait_for_records
from tests.support.metric_samples import scrape, series


async def test_queue_rate_and_insert_throttle_delays_are_counted_per_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delays_module, "drop_delay", lambda: 7)  # KumoMTA's 0-59 s jitter
    _, stamp = future(1800)
    logs = tmp_path / "logs"
    node = await start(tmp_path, policy(
        logs,
        # rate.example: one message an hour; held.example: the event holds each back.
        queue="max_message_rate = (domain == 'rate.example') and '1/h' or nil",
        extra=f"""
kumo.on('throttle_insert_ready_queue', function(msg)
  if msg:recipient().domain == 'held.example' then
    msg:set_due '{stamp}'
  end
end)"""))
    try:
        await node.send(recipients=["a@rate.example", "b@rate.example", "c@rate.example"])
        await node.send(recipients="d@held.example")
        await wait_for_records(logs, "Delayed", count=3)
        await node.wait_for("Delivery")  # the first of rate.example
        values = await scrape(node)
    finally:
        await node.stop()
    assert series(values, "delayed_due_to_message_rate_throttle") == {("rate.example",): 2}
    assert series(values, "delayed_due_to_throttle_insert_ready") == {("held.example",): 1}


def test_a_reaped_queue_takes_its_delay_series_with_it() -> None:
    now = [0.0]
    counts = DelayCounts()
    queue = ScheduledQueue("gone.example", QueueConfig.from_options({"reap_interval": "1s"}))
    scheduled = {queue.name: queue}
    reaper = QueueReaper(scheduled, clock=lambda: now[0], on_reaped=counts.forget)
    counts.rate_throttled("gone.example")
    counts.insert_throttled("gone.example")
    counts.ready_full("gone.example")
    counts.rate_throttled("kept.example")
    counts.ready_full("kept.example")
    reaper.emptied(queue)
    now[0] = 2.0
    assert reaper.reap() == 1 and scheduled == {}
    assert counts.by_rate == {"kept.example": 1} and counts.by_insert_throttle == {}
    assert counts.by_ready_full == {"kept.example": 1}
