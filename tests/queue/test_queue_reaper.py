"""KumoMTA's ``reap_interval`` (kumocore.queue.queue_reaper): an emptied scheduled queue
stays until it has been empty that long, then goes; a queue refilled in time stays."""

from __future__ import annotations

import asyncio

from kumocore.config import QueueConfig
from kumocore.queue.queue_reaper import QueueReaper
from kumocore.queue.schedule import ScheduledQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _queues(*names: str, reap: str = "10m") -> dict[str, ScheduledQueue]:
    config = QueueConfig.from_options({"reap_interval": reap})
    return {name: ScheduledQueue(name, config) for name in names}


def test_an_emptied_queue_stays_for_its_reap_interval_then_goes() -> None:
    clock = Clock()
    scheduled = _queues("a.example", "b.example")
    reaper = QueueReaper(scheduled, clock)
    reaper.emptied(scheduled["a.example"])
    clock.now += 599
    assert reaper.reap() == 0 and "a.example" in scheduled
    clock.now += 1
    assert reaper.reap() == 1
    assert set(scheduled) == {"b.example"}  # never emptied: never reaped


def test_a_queue_refilled_in_time_stays_and_waits_a_whole_interval_once_empty_again() -> None:
    clock = Clock()
    scheduled = _queues("a.example", reap="1m")
    queue = scheduled["a.example"]
    reaper = QueueReaper(scheduled, clock)
    reaper.emptied(queue)
    clock.now += 30
    queue.ids.add("m1")  # a message for it
    clock.now += 40
    assert reaper.reap() == 0 and "a.example" in scheduled  # its entry came up: busy
    queue.ids.clear()
    reaper.emptied(queue)
    clock.now += 59
    assert reaper.reap() == 0 and "a.example" in scheduled
    clock.now += 1
    assert reaper.reap() == 1 and scheduled == {}


def test_a_queue_emptied_again_before_its_entry_came_up_is_held_by_one_entry() -> None:
    clock = Clock()
    scheduled = _queues("a.example", reap="1m")
    queue = scheduled["a.example"]
    reaper = QueueReaper(scheduled, clock)
    for _ in range(1000):  # one message at a time: empty after every delivery
        queue.ids.add("m")
        queue.ids.clear()
        reaper.emptied(queue)
        clock.now += 0.01
    assert len(reaper._heap) == 1
    clock.now += 50  # 60 s after the first emptying, 50 s after the last
    assert reaper.reap() == 0 and "a.example" in scheduled
    clock.now += 10
    assert reaper.reap() == 1


def test_a_queue_replaced_under_its_name_is_not_reaped_by_the_old_entry() -> None:
    clock = Clock()
    scheduled = _queues("a.example", reap="1m")
    reaper = QueueReaper(scheduled, clock)
    reaper.emptied(scheduled["a.example"])
    replacement = _queues("a.example")["a.example"]
    replacement.ids.add("m")
    scheduled["a.example"] = replacement
    clock.now += 61
    assert reaper.reap() == 0 and scheduled["a.example"] is replacement


async def test_the_reaper_wakes_for_a_queue_due_before_its_next_check() -> None:
    scheduled = _queues("a.example", reap="50ms")
    reaper = QueueReaper(scheduled)
    reaper.start(asyncio.get_running_loop())
    try:
        await asyncio.sleep(0.01)  # its timer a minute away: nothing to reap
        reaper.emptied(scheduled["a.example"])
        async with asyncio.timeout(2):
            while scheduled:
                await asyncio.sleep(0.01)
    finally:
        reaper.stop()


POLICY = """
local kumo = require 'kumo'
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  if domain == 'brief.test' then
    return kumo.make_queue_config { reap_interval = '300ms' }
  end
  return kumo.make_queue_config {}
end)
"""


async def test_a_node_reaps_an_emptied_queue_after_its_reap_interval_only() -> None:
    from kumocore.testing.node import start_node

    node = await start_node(POLICY)
    try:
        for recipient in ("a@brief.test", "b@default.test"):
            assert await node.send("s@src.test", recipient) == {}
        await node.wait_for("Delivery", count=2, timeout=20)
        scheduled = node.runtime.services.queues.scheduled
        async with asyncio.timeout(5):
            while "brief.test" in scheduled:
                await asyncio.sleep(0.05)
        # The default interval is ten minutes: the other queue stays, empty, listed at 0.
        assert scheduled["default.test"].ids == set()
        status, summary = await node.admin("GET", "/api/admin/queue-summary/v1")
        assert status == 200
        assert [(q["name"], q["count"]) for q in summary["scheduled"]] == [("default.test", 0)]
    finally:
        await node.stop()
