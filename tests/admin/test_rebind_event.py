"""``POST /api/admin/rebind/v1`` with ``trigger_rebind_event`` (and ``kumocore rebind
--trigger-rebind-event``) on real nodes: the policy's ``rebind_message`` handler decides
what happens to each waiting message, then the message is re-resolved as every rebind
does. KumoMTA's own cases (its ``rebind_event_defined`` and ``rebind_event_missing``
integration tests) first: a held message rebound by the event reaches the sink with the
header the handler added; without a handler the message stays where it was."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kumocore.node.cli import main
from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode

HANDLER = """
local kumo = require 'kumo'
kumo.on('rebind_message', function(msg, data)
  msg:append_header('X-Rebound', 'yes')
  msg:set_meta('queue', data.queue)
  -- data is a plain table of this message's own: changing it changes nothing for others
  data.queue = 'changed-by-the-first-handler.test'
  msg:set_meta('data_type', type(data))
end)
"""

FAILING_HANDLER = """
local kumo = require 'kumo'
kumo.on('rebind_message', function(msg, data)
  msg:set_meta('queue', data.queue)
  error('the handler failed after setting the queue')
end)
"""

NO_HANDLER = """
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg) msg:set_meta('tenant', 'acme') end)
"""


async def _held(node: Node, *recipients: str) -> None:
    """Suspend example.com's scheduled queues, then send ``recipients`` there: the
    messages wait in the scheduler, as in KumoMTA's test."""
    status, answer = await node.admin(
        "POST",
        "/api/admin/suspend/v1",
        {"domain": "example.com", "reason": "held for the test", "duration": "1h"},
    )
    assert status == 200, answer
    await node.send(recipients=list(recipients))
    await node.wait_for("Reception", count=len(recipients))
    manager = node.runtime.services.queues
    deadline = time.monotonic() + 5
    while sum(q.waiting for q in manager.scheduled.values()) < len(recipients):
        assert time.monotonic() < deadline, "the messages never waited in the scheduler"
        await asyncio.sleep(0.02)


async def _rebind(node: Node, **fields: Any) -> dict[str, Any]:
    body = {"domain": "example.com", "reason": "testing", "trigger_rebind_event": True,
            "data": {"queue": "rebound.test", "note": "not meta"}, **fields}  # fmt: skip
    status, answer = await node.admin("POST", "/api/admin/rebind/v1", body)
    assert status == 200, answer
    return dict(answer)


async def test_the_rebind_event_moves_and_edits_each_message_instead_of_merging_data(
    make_node: MakeNode,
) -> None:
    node = await make_node(HANDLER)
    await _held(node, "a@example.com", "b@example.com")
    assert await _rebind(node) == {"moved": 2, "flushed": 0}
    assert node.sink is not None
    await node.sink.wait_for(2)
    assert all(b"\r\nX-Rebound: yes\r\n" in m.data for m in node.sink.messages)
    deliveries = await node.wait_for("Delivery", count=2)
    assert {d["queue"] for d in deliveries} == {"rebound.test"}
    for record in deliveries:
        assert record["meta"]["data_type"] == "table"
        assert "note" not in record["meta"]  # data went to the handler, not into the meta
    rebinds = node.logs("AdminRebind")
    assert len(rebinds) == 2
    assert all("example.com" in r["response"]["content"] for r in rebinds)


async def test_without_a_handler_the_messages_stay_and_data_is_not_merged(
    make_node: MakeNode,
) -> None:
    node = await make_node(NO_HANDLER)
    await _held(node, "a@example.com")
    assert await _rebind(node) == {"moved": 0, "flushed": 0}
    manager = node.runtime.services.queues
    [message] = manager.messages.values()
    assert manager.queue_of(message).name == "acme@example.com"  # type: ignore[union-attr]
    assert "queue" not in message.meta and "note" not in message.meta
    assert node.logs("AdminRebind") == []
    # always_flush still applies, as in KumoMTA: the message is due now in its own queue.
    assert await _rebind(node, always_flush=True, tenant="acme") == {"moved": 0, "flushed": 1}


async def test_a_failing_handler_keeps_what_it_changed_and_the_message_is_re_resolved(
    make_node: MakeNode,
) -> None:
    node = await make_node(FAILING_HANDLER)
    await _held(node, "a@example.com")
    assert await _rebind(node) == {"moved": 1, "flushed": 0}
    assert node.sink is not None
    await node.sink.wait_for(1)
    [delivery] = await node.wait_for("Delivery")
    assert delivery["queue"] == "rebound.test"


async def test_suppress_logging_leaves_out_the_admin_rebind_records_of_the_event_too(
    make_node: MakeNode,
) -> None:
    node = await make_node(HANDLER)
    await _held(node, "a@example.com")
    assert await _rebind(node, suppress_logging=True) == {"moved": 1, "flushed": 0}
    await node.wait_for("Delivery")
    assert node.logs("AdminRebind") == []


PYTHON_POLICY = """
from kumocore import hookimpl

@hookimpl
def kumo_rebind_message(message, data):
    message.set_meta("queue", data["queue"])
    message.set_meta("python_saw", ",".join(sorted(data)))
"""


async def test_a_python_policy_gets_the_event_as_kumo_rebind_message(
    make_node: MakeNode,
) -> None:
    node = await make_node(PYTHON_POLICY, language="python")
    await _held(node, "a@example.com")
    assert await _rebind(node) == {"moved": 1, "flushed": 0}
    [delivery] = await node.wait_for("Delivery")
    assert delivery["queue"] == "rebound.test"
    assert delivery["meta"]["python_saw"] == "note,queue"


async def test_kumocore_rebind_passes_trigger_rebind_event_like_kcli(
    make_node: MakeNode, capsys: Any
) -> None:
    node = await make_node(HANDLER)
    await _held(node, "a@example.com")
    capsys.readouterr()
    code = await asyncio.to_thread(main, [
        "rebind", "--domain", "example.com", "--reason", "testing", "--trigger-rebind-event",
        "--data", '{"queue": "rebound.test"}', "--endpoint", node.http_url])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert '"moved": 1' in out
    [delivery] = await node.wait_for("Delivery")
    assert delivery["queue"] == "rebound.test"


XFER = """
local kumo = require 'kumo'
kumo.on('rebind_message', function(msg, data)
  kumo.xfer.xfer(msg, data.target)
end)
"""


async def test_kumo_xfer_in_the_handler_moves_the_message_to_the_transfer_queue(
    make_node: MakeNode,
) -> None:
    node = await make_node(XFER)
    await _held(node, "a@example.com")
    # A target nobody listens on: the message waits in its transfer queue, retried.
    answer = await _rebind(node, data={"target": "http://127.0.0.1:9"})
    assert answer == {"moved": 1, "flushed": 0}
    [rebind] = await node.wait_for("AdminRebind")
    assert rebind["queue"] == "http://127.0.0.1:9/.xfer.kumomta.internal"
    [message] = node.runtime.services.queues.messages.values()
    assert message.meta["xfer_queue_info"]  # its placement put aside, as kumo.xfer.xfer does


async def test_a_body_released_to_the_spool_is_edited_whole_and_saved(
    make_node: MakeNode,
) -> None:
    # A deferred message's body lives in the spool only: the handler's header must land
    # in the real message, and the body must survive (the sink 451s the first attempt).
    node = await make_node(HANDLER, spool="rocksdb")
    await node.send(recipients="tempfail-once@example.com", subject="kept whole")
    await node.wait_for("TransientFailure")
    manager = node.runtime.services.queues
    [message] = manager.messages.values()
    # The TransientFailure record is written before the deferral releases the body.
    async with asyncio.timeout(5):
        while message.data:
            await asyncio.sleep(0.01)
    assert message.data == b""  # released: on disk only
    answer = await _rebind(node)
    assert answer == {"moved": 1, "flushed": 0}
    assert node.sink is not None
    [received] = await node.sink.wait_for(1)
    assert b"\r\nX-Rebound: yes\r\n" in received.data
    assert b"Subject: kept whole\r\n" in received.data
    assert received.data.endswith(b"hello from kumocore.testing\r\n")
