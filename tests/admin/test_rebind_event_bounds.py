"""Bounds of the ``rebind_message`` event: a rebind over a large queue runs one Lua
handler per message without stalling the worker, and a message stays out of delivery
while its handler is awaited."""

from __future__ import annotations

import time

import pytest

from kumocore.config import QueueConfig
from kumocore.mail.message import Message
from kumocore.node.runtime import Runtime
from kumocore.testing.plugin import MakeNode
from tests.support.server_gc import server_gc
from tests.support.ticker import LoopTicker

#: An egress pool no policy defines: a message that becomes due fails routing with a 451.
NOWHERE = QueueConfig.from_options({"egress_pool": "nowhere"})
#: Messages rebound: with the event (a Lua call each) and merging data alone (faster).
MESSAGES = {True: 10_000, False: 40_000}
#: The longest the worker may go without serving anything else meanwhile.
STALL = 0.05

RETAG = """
local kumo = require 'kumo'
kumo.on('rebind_message', function(msg, data)
  msg:set_meta('tenant', data.tenant)
end)
"""

SLOW = """
local kumo = require 'kumo'
kumo.on('rebind_message', function(msg, data)
  kumo.sleep(0.3)  -- the message falls due meanwhile
  msg:set_meta('queue', data.queue)
end)
"""


def _insert(runtime: Runtime, count: int, due_in: float) -> list[Message]:
    assert runtime.services is not None
    manager = runtime.services.queues
    messages = []
    for i in range(count):
        message = Message("sender@example.org", f"user{i}@example.com",
                          b"Subject: hi\r\n\r\nhello\r\n", due=time.time() + due_in)  # fmt: skip
        manager.insert(message, message.queue_name(), NOWHERE)
        messages.append(message)
    return messages


@pytest.mark.serial  # a latency bound: measured on a machine not running other tests
@pytest.mark.parametrize("event", [True, False], ids=["with the event", "merging data"])
async def test_rebinding_thousands_of_messages_does_not_stall_the_worker(
    make_node: MakeNode, event: bool
) -> None:
    node = await make_node(RETAG, sink=False)
    # With `kumocore serve`'s collector: without it, full collections of pytest's own
    # heap (80-130 ms each, no server walks that) landed in the measured rebind.
    with server_gc() as freeze:
        messages = _insert(node.runtime, MESSAGES[event], due_in=3600)
        freeze()
        started = time.perf_counter()
        async with LoopTicker() as ticker:
            status, answer = await node.admin("POST", "/api/admin/rebind/v1", {
                "domain": "example.com", "reason": "retag", "trigger_rebind_event": event,
                "suppress_logging": True, "data": {"tenant": "acme"}})  # fmt: skip
        took = time.perf_counter() - started
    assert status == 200, answer
    assert answer == {"moved": MESSAGES[event], "flushed": 0}
    assert all(m.meta["tenant"] == "acme" for m in messages)
    # The work itself takes many times the bound, so the bound says it yielded.
    assert took > 4 * STALL, f"too little work to measure: {took:.3f} s"
    assert ticker.longest < STALL, (
        f"the loop stalled {ticker.longest * 1000:.0f} ms during a {took:.2f} s rebind"
    )


async def test_a_message_falling_due_while_its_handler_runs_is_not_routed_meanwhile(
    make_node: MakeNode,
) -> None:
    node = await make_node(SLOW, sink=False)
    [message] = _insert(node.runtime, 1, due_in=0.1)
    status, answer = await node.admin("POST", "/api/admin/rebind/v1", {
        "domain": "example.com", "reason": "slow", "trigger_rebind_event": True,
        "data": {"queue": "rebound.test"}})  # fmt: skip
    assert status == 200, answer
    assert answer == {"moved": 1, "flushed": 0}
    # Routed once, from its new queue: never from example.com while the handler slept.
    records = await node.wait_for("TransientFailure")
    assert [r["queue"] for r in records] == ["rebound.test"]
    assert node.logs("TransientFailure", queue="example.com") == []
    assert message.num_attempts == 1
