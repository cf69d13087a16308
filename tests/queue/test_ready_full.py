"""KumoMTA's ``ready_full`` (per ready queue) and ``delayed_due_to_ready_queue_full`` (per
scheduled queue) on a real node: a ready queue with ``max_ready = 2`` held by an operator
suspension takes five messages; the three beyond ``max_ready`` are counted on both. Unlike
KumoMTA, kumocore keeps them in the path (no ``Delayed`` record, no trip back to the
scheduled queue): all five are delivered once the suspension goes.
``total_readyq_runs`` counts the path's connection-opening passes: none while it is held."""

from __future__ import annotations

import asyncio
import time

from kumocore.testing.node import SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink
from tests.support.metric_samples import Samples, samples, series

READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
SERVICE = f"smtp_client:{READY_Q}"
SUSPEND = "/api/admin/suspend-ready-q/v1"
POLICY = """
local kumo = require 'kumo'
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {
    smtp_port = PORT, prohibited_hosts = {}, idle_timeout = '200ms', max_ready = 2 }
end)
"""
RECIPIENTS = [f"r{n}@dest.test" for n in range(5)]


async def _node(make_node: MakeNode, sink: RecordingSink) -> Node:
    return await make_node(POLICY.replace("PORT", str(sink.port)), sink=sink)


async def _values(node: Node) -> Samples:
    return samples((await node.admin("GET", "/metrics"))[1])


async def _ready_count(node: Node, expected: int, timeout: float = 5.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        values = await _values(node)
        if series(values, "ready_count").get((READY_Q,)) == expected:
            return values
        assert time.monotonic() < deadline, series(values, "ready_count")
        await asyncio.sleep(0.05)


async def test_messages_beyond_max_ready_count_as_ready_full_and_are_still_delivered(
    make_node: MakeNode, sink: RecordingSink
) -> None:
    node = await _node(make_node, sink)
    status, held = await node.admin("POST", SUSPEND,
                                    {"name": READY_Q, "reason": "test", "duration": "1h"})
    assert status == 200, held
    assert await node.send(recipients=RECIPIENTS) == {}
    values = await _ready_count(node, 5)  # all five stay with the path
    assert series(values, "ready_full") == {(SERVICE,): 3}
    assert series(values, "delayed_due_to_ready_queue_full") == {("dest.test",): 3}
    assert values[("total_readyq_runs", ())] == 0  # a held path starts no pass
    assert node.logs("Delayed") == []
    status, _ = await node.admin("DELETE", SUSPEND, {"id": held["id"]})
    assert status == 200
    received = await sink.wait_for(5)
    assert sorted(m.recipient for m in received) == RECIPIENTS
    values = await _values(node)
    assert values[("total_readyq_runs", ())] >= 1
    assert series(values, "ready_full") == {(SERVICE,): 3}  # a counter: it stays


async def test_a_ready_queue_below_max_ready_counts_no_ready_full(
    make_node: MakeNode, sink: RecordingSink
) -> None:
    node = await _node(make_node, sink)
    assert await node.send(recipients=RECIPIENTS[:2]) == {}
    await node.wait_for("Delivery", count=2)
    values = await _values(node)
    assert series(values, "ready_full") == {}
    assert series(values, "delayed_due_to_ready_queue_full") == {}
    assert values[("total_readyq_runs", ())] >= 1
