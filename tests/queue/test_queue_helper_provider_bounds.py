"""policy-extras.queue's provider lookup against a name server that never answers: the
lookup costs the asking handler one resolver timeout, no other client waits for it, and
the failure is remembered (``queue.lua_resolve_provider``: a minute, 128 destinations),
so the next ask for that destination costs nothing. Real node, Lua policy, a real name
server that swallows queries."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.common.smtp_client import RawSmtpClient
from kumocore.testing.node import Node, start_node

POLICY = """
local kumo = require 'kumo'
local queue_module = require 'policy-extras.queue'
queue_module:setup { 'DIR/queues.toml' }

kumo.on('http_message_generated', function(msg)
  msg:set_meta('resolved', tostring(queue_module:resolve_provider('silent.test')))
end)
"""
REQUEST = {"envelope_sender": "s@src.test", "content": "Subject: t\r\n\r\nhi\r\n",
           "recipients": [{"email": "r@other.test"}]}


async def _ehlo_seconds(port: int) -> float:
    """How long another client waits for the greeting and its EHLO's answer."""
    started = time.monotonic()
    client = await RawSmtpClient.connect(port, timeout=30)
    try:
        assert (await client.read_reply()).code == 220
        assert (await client.command("EHLO other.example")).code == 250
        return time.monotonic() - started
    finally:
        await client.close()


async def _timed_inject(node: Node) -> float:
    """Seconds one inject took (its policy handler asks for the provider)."""
    started = time.monotonic()
    status, body = await node.inject(REQUEST)
    assert status == 200 and body["success_count"] == 1, body
    return time.monotonic() - started


async def test_a_silent_name_server_costs_one_timeout_once_and_nobody_else_waits(
    tmp_path: Path,
) -> None:
    (tmp_path / "queues.toml").write_text("[queue.default]\nretry_interval = '1h'\n")
    node = await start_node(POLICY.replace("DIR", str(tmp_path)))
    try:
        node.dns.down()  # every query is swallowed: the lookup waits out the timeout
        first = asyncio.ensure_future(_timed_inject(node))
        waits: list[float] = []
        while not first.done():
            waits.append(await _ehlo_seconds(node.smtp_port))
            await asyncio.sleep(0.2)
        first_seconds = await first
        second_seconds = await _timed_inject(node)
        resolved = [r["meta"]["resolved"] for r in await node.wait_for("Reception", count=2)]
    finally:
        await node.stop()
    # The first inject waited for the resolver (5 s) twice: its handler's ask for
    # silent.test, then its queue's for other.test (the queue helper's get_queue_config)...
    assert first_seconds > 8, first_seconds
    assert resolved == ["nil", "nil"]  # a failed lookup names no provider
    # ...while other clients were served as usual,
    assert len(waits) >= 5 and max(waits) < 1.0, waits
    # and both failures were remembered: the second inject did not wait for the name
    # server (with the memo's ttl at 0 it took 5 s).
    assert second_seconds < 1.0, second_seconds
