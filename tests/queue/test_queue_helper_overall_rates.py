"""policy-extras.queue's overall_max_message_rate: one rate for all of a tenant's (or a
tenant campaign's) scheduled queues, applied by a real node (Lua policy, ESMTP listener,
recording sink) as messages go from their scheduled queues to their ready queues."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kumocore.testing.node import Node, start_node

QUEUES = """
tenant_header = 'X-Tenant'
campaign_header = 'X-Campaign'

[tenant.'acme']
overall_max_message_rate = '1/hour'

[tenant.'free']

[tenant.'beta']
[tenant.'beta'.campaigns.'promo']
overall_max_message_rate = '1/hour'
"""

POLICY = """
local kumo = require 'kumo'
local queue_module = require 'policy-extras.queue'
local helper = queue_module:setup { 'DIR/queues.toml' }
kumo.on('smtp_server_message_received', function(msg) helper:apply(msg) end)
"""


async def _node(tmp_path: Path) -> Node:
    (tmp_path / "queues.toml").write_text(QUEUES)
    return await start_node(POLICY.replace("DIR", str(tmp_path)))


async def _send(node: Node, recipient: str, tenant: str, campaign: str = "") -> None:
    head = f"From: s@src.test\r\nTo: {recipient}\r\nX-Tenant: {tenant}\r\n"
    if campaign:
        head += f"X-Campaign: {campaign}\r\n"
    assert await node.send("s@src.test", recipient, head + "Subject: t\r\n\r\nhi\r\n") == {}


async def _delivered(node: Node, count: int) -> set[str]:
    records = await node.wait_for("Delivery", count=count)
    await asyncio.sleep(1.0)  # any other message would have gone by now
    assert len(node.logs("Delivery")) == count, node.logs("Delivery")
    return {record["recipient"] for record in records}


async def test_a_tenants_overall_rate_holds_all_its_queues_together(tmp_path: Path) -> None:
    node = await _node(tmp_path)
    try:
        # Three destination domains: three scheduled queues, each of them unthrottled.
        acme = [f"a@{d}.test" for d in ("one", "two", "three")]
        free = [f"f@{d}.test" for d in ("one", "two", "three")]
        for recipient in acme:
            await _send(node, recipient, "acme")
        for recipient in free:
            await _send(node, recipient, "free")
        delivered = await _delivered(node, 4)
        assert set(free) <= delivered
        assert len(set(acme) & delivered) == 1, delivered  # one an hour, across its queues
        # The other two wait in their scheduled queues, re-timed within the minute as
        # KumoMTA re-times a throttled message, and asked again then.
        assert not node.logs("Bounce")
        assert len(node.logs("Reception")) == 6
    finally:
        await node.stop()


async def test_a_campaigns_overall_rate_holds_only_that_campaign(tmp_path: Path) -> None:
    node = await _node(tmp_path)
    try:
        await _send(node, "p1@one.test", "beta", "promo")
        await _send(node, "p2@two.test", "beta", "promo")
        await _send(node, "n@one.test", "beta", "news")
        await _send(node, "x@two.test", "beta")
        delivered = await _delivered(node, 3)
        assert {"n@one.test", "x@two.test"} <= delivered
        assert len({"p1@one.test", "p2@two.test"} & delivered) == 1, delivered
    finally:
        await node.stop()
