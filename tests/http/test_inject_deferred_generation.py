"""``POST /api/inject/v1`` with ``"deferred_generation": true``: the request is checked,
spooled as one message in ``generator.kumomta.internal`` and answered at once with zero
counts; that queue then expands it into messages as an immediate request would have
(real nodes, RocksDB spools in temp dirs, a real sink)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function() end)
"""

ZERO = {"success_count": 0, "fail_count": 0, "failed_recipients": [], "errors": []}


def _request(*emails: str, **extra: Any) -> dict[str, Any]:
    return {
        "envelope_sender": "news@sender.example", "deferred_generation": True,
        "content": "Subject: hello {{ name }}\r\n\r\nhi\r\n",
        "recipients": [{"email": email, "name": email.split("@")[0]} for email in emails],
        **extra,
    }


async def _spooled(node: Node) -> list[str]:
    services = node.runtime.services
    assert services is not None
    return [key async for key in services.store.meta.keys()]  # noqa: SIM118 (a spool)


async def test_the_request_is_queued_answered_at_once_then_expanded(
    make_node: MakeNode,
) -> None:
    node = await make_node(POLICY, spool="rocksdb")
    status, answer = await node.inject(_request("a@one.example", "b@two.example"))
    assert (status, answer) == (200, ZERO)
    [queued] = await node.wait_for("Reception", queue="generator.kumomta.internal")
    assert queued["recipient"] == "" and queued["sender"] == "news@sender.example"
    assert queued["meta"]["http_auth"] == "127.0.0.1"
    [done] = await node.wait_for("Delivery", recipient="")
    assert done["id"] == queued["id"]
    assert done["delivery_protocol"] == "HttpInjectionGenerator"
    assert done["response"]["code"] == 250
    deliveries = await node.wait_for("Delivery", count=3)
    assert {d["recipient"] for d in deliveries} == {"", "a@one.example", "b@two.example"}
    assert node.sink is not None
    assert sorted(m.recipient for m in node.sink.messages) == ["a@one.example", "b@two.example"]
    assert b"Subject: hello a\r\n" in next(
        m.data for m in node.sink.messages if m.recipient == "a@one.example")
    receptions = node.logs("Reception")
    assert {r["meta"].get("reception_protocol") for r in receptions} == {"HTTP"}
    async with asyncio.timeout(10):  # each leaves the spool just after its record
        while await _spooled(node):
            await asyncio.sleep(0.02)


async def test_a_request_with_a_bad_template_is_refused_at_once_and_queues_nothing(
    make_node: MakeNode,
) -> None:
    node = await make_node(POLICY, spool="rocksdb")
    status, answer = await node.inject(
        _request("a@one.example", content="Subject: {{ oops\r\n\r\nx"))
    assert status == 422 and "syntax error" in answer["error"]
    assert node.logs("Reception") == [] and await _spooled(node) == []


async def test_a_queued_request_survives_a_restart_and_is_expanded_by_the_next_start(
    make_node: MakeNode, tmp_path: Any,
) -> None:
    first = await make_node(POLICY, spool="rocksdb", tmp_path=tmp_path)
    await first.hold()  # the generator queue waits too: the request stays queued
    status, answer = await first.inject(_request("kept@one.example"))
    assert (status, answer) == (200, ZERO)
    [queued] = await first.wait_for("Reception", queue="generator.kumomta.internal")
    await first.wait_for("TransientFailure", recipient="")
    await first.stop()
    second = await make_node(POLICY, spool="rocksdb", tmp_path=tmp_path)
    # The suspension is kept with the node's state: end it, and make the request due now.
    status, suspensions = await second.admin("GET", "/api/admin/suspend/v1")
    assert status == 200
    for suspension in suspensions:
        await second.admin("DELETE", "/api/admin/suspend/v1", {"id": suspension["id"]})
    status, _ = await second.admin("POST", "/api/admin/rebind/v1", {
        "reason": "now", "always_flush": True, "domain": "generator.kumomta.internal"})
    assert status == 200
    [done] = await second.wait_for("Delivery", recipient="")
    assert done["id"] == queued["id"]
    [message] = await second.wait_for("Delivery", recipient="kept@one.example")
    assert message["meta"]["http_auth"] == "127.0.0.1"


async def test_deferred_spool_keeps_the_queued_request_in_memory(make_node: MakeNode) -> None:
    node = await make_node(POLICY, spool="rocksdb")
    await node.hold()
    status, _ = await node.inject(_request("a@one.example", deferred_spool=True))
    assert status == 200
    [queued] = await node.wait_for("Reception", queue="generator.kumomta.internal")
    # Held, the request fails its first attempt (the suspension): only then is it written.
    await node.wait_for("TransientFailure", recipient="")
    async with asyncio.timeout(10):  # written just after its record
        while await _spooled(node) != [queued["id"]]:
            await asyncio.sleep(0.02)


LUA_POLICY = """
local kumo = require 'kumo'
kumo.on('init', function() end)
kumo.on('smtp_server_message_received', function(msg)
  if msg:recipient().user == 'trigger' then
    local answer = kumo.api.inject.inject_v1 {
      envelope_sender = 'lua@sender.example', content = 'Subject: from lua\\r\\n\\r\\nx\\r\\n',
      deferred_generation = true, recipients = { { email = 'made@three.example' } },
    }
    msg:set_meta('answer', kumo.json_encode(answer))
  end
end)
"""


async def test_the_policy_function_queues_a_deferred_request_too(make_node: MakeNode) -> None:
    node = await make_node(LUA_POLICY, spool="rocksdb")
    await node.send(recipients="trigger@one.example")
    [queued] = await node.wait_for("Reception", queue="generator.kumomta.internal")
    assert queued["meta"]["http_auth"] == "kumomta.internal"
    [made] = await node.wait_for("Delivery", recipient="made@three.example")
    assert made["sender"] == "lua@sender.example"
    [trigger] = node.logs("Reception", recipient="trigger@one.example")
    answer = json.loads(trigger["meta"]["answer"])  # (empty Lua tables encode as {})
    assert (answer["success_count"], answer["fail_count"]) == (0, 0)
    assert not answer["errors"] and not answer["failed_recipients"]
