"""The manager's running totals of waiting messages by domain, tenant and campaign
(KumoMTA's scheduled_by_* gauges) follow each queue's own count both ways."""

from __future__ import annotations

import time

from kumocore.config import QueueConfig
from kumocore.mail.message import Message
from kumocore.queue.schedule import ScheduledQueue
from kumocore.queue.scheduled_totals import ScheduledTotals


def test_totals_follow_messages_in_and_out_and_drop_series_at_zero() -> None:
    totals = ScheduledTotals()
    config = QueueConfig.from_options({})
    welcome = ScheduledQueue("welcome:acme@example.com!relay.example", config)
    plain = ScheduledQueue("example.net", config)
    totals.change(welcome, 1)
    totals.change(welcome, 1)
    totals.change(plain, 1)
    assert (welcome.waiting, plain.waiting, totals.total) == (2, 1, 3)
    assert totals.by_domain == {"example.com": 2, "example.net": 1}
    assert totals.by_tenant == {"acme": 2}
    assert totals.by_campaign == {("acme", "welcome"): 2}
    totals.change(welcome, -1)
    totals.change(welcome, -1)
    assert totals.by_domain == {"example.net": 1}
    assert totals.by_tenant == {} and totals.by_campaign == {}
    assert totals.total == 1


async def test_the_manager_counts_a_message_that_leaves_its_scheduled_queue(make_bench) -> None:
    bench = await make_bench()
    manager = bench.queues
    config = QueueConfig.from_options({})
    later = time.time() + 3600
    messages = [Message("s@src.test", f"r{n}@example.com", b"Subject: t\r\n\r\nhi\r\n",
                        meta={"tenant": "acme"}, due=later) for n in range(3)]  # fmt: skip
    for message in messages:
        manager.insert(message, "acme@example.com", config)
    totals = manager.scheduled_totals
    assert totals.by_tenant == {"acme": 3} and totals.total == 3
    manager.detach(messages[0])  # rebind takes it out of its queue's wait
    assert totals.by_tenant == {"acme": 2}
    assert totals.total == sum(q.waiting for q in manager.scheduled.values()) == 2
