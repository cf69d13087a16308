"""kumocore-webhook-sink tested the way a plugin author would: a real kumocore node from
kumocore.testing's ``make_node`` fixture (installed with ``pip install 'kumocore[testing]'``)
loads this plugin through its entry point and runs a Lua policy that configures it; mail
sent to the node must arrive at an HTTP receiver as KumoMTA JSON records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.configure_webhook_sink { url = '{url}', batch_size = 10, meta = { 'tenant' },
                                headers = { 'Subject' } }
end)
kumo.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', 'acme')
end)
"""


class Receiver:
    def __init__(self) -> None:
        self.url = ""
        self.records: list[dict[str, Any]] = []

    async def hook(self, request: web.Request) -> web.Response:
        self.records.extend(await request.json())
        return web.Response(status=204)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.records) < count:
                await asyncio.sleep(0.02)
        return self.records


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield receiver
    await runner.cleanup()


async def test_reception_and_delivery_records_are_posted_as_json(
    make_node: Any, receiver: Receiver
) -> None:
    node = await make_node(POLICY.replace("{url}", receiver.url))
    await node.send("a@example.org", "b@example.com", subject="webhook test")
    await node.wait_for("Delivery", recipient="b@example.com")
    records = await receiver.wait_for(2)
    assert [r["type"] for r in records] == ["Reception", "Delivery"]
    assert {r["recipient"] for r in records} == {"b@example.com"}
    assert records[0]["meta"] == {"tenant": "acme"}
    assert records[0]["headers"] == {"Subject": "webhook test"}
    assert len(node.sink.messages) == 1  # and the node really delivered it
