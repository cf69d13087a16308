"""``kumo.amqp.build_client(URI)`` (KumoMTA's deprecated AMQP client object) against a real
RabbitMQ: a Lua policy publishes through it, the broker holds what it published, and the
client's errors are KumoMTA's shape (a second close, unknown keys, a broker that is not
there)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kumocore import PolicyError
from tests.plugins.lua_policy.support import load
from tests.support.brokers import RABBITMQ, Broker, available, free_port, start_rabbitmq

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(RABBITMQ),
                       reason="rabbitmq-server not installed (scripts/setup.sh)"),
]

POLICY = """\
local kumo = require 'kumo'
kumo.on('publish.some', function(uri, queue, count)
  local client = kumo.amqp.build_client(uri)
  local statuses = {}
  for i = 1, count do
    local confirm = client:publish {
      routing_key = queue,
      payload = kumo.json_encode { n = i },
      properties = { content_type = 'application/json', delivery_mode = 2 },
    }
    table.insert(statuses, confirm:wait().status)
  end
  local timed = client:publish_with_timeout({ routing_key = queue, payload = 'last' }, 5000)
  table.insert(statuses, timed.status)
  client:close()
  local ok, err = pcall(function() client:close() end)
  return { statuses = statuses, second_close = tostring(err), ok = ok }
end)
kumo.on('publish.bad', function(uri, params)
  local client = kumo.amqp.build_client(uri)
  local ok, err = pcall(function() return client:publish(params) end)
  client:close()
  return tostring(err)
end)
kumo.on('connect', function(uri) return kumo.amqp.build_client(uri) end)
"""


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = start_rabbitmq(tmp_path_factory.mktemp("rabbit"))
    try:
        yield broker
    finally:
        broker.stop()


async def queued(port: int, queue: str) -> list[Any]:
    import aio_pika

    connection = await aio_pika.connect(host="127.0.0.1", port=port)
    bodies: list[Any] = []
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)
        while (message := await declared.get(fail=False)) is not None:
            bodies.append((message.content_type, message.body.decode()))
            await message.ack()
    return bodies


async def declare(port: int, queue: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(host="127.0.0.1", port=port)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)


async def test_a_policy_publishes_through_a_built_client_and_the_broker_holds_it(
    rabbit: Broker, tmp_path: Path
) -> None:
    await declare(rabbit.port, "built")
    _, policy = await load(tmp_path, POLICY)
    uri = f"amqp://guest:guest@127.0.0.1:{rabbit.port}/%2f"
    got = await policy.call_custom_event("publish.some", uri, "built", 3)
    # As KumoMTA: the client's channel asks for no publisher confirms.
    assert got["statuses"] == ["NotRequested"] * 4
    assert got["ok"] is False and "already closed" in got["second_close"]
    bodies = await queued(rabbit.port, "built")
    assert [json.loads(body) for _, body in bodies[:3]] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert [kind for kind, _ in bodies[:3]] == ["application/json"] * 3
    assert bodies[3] == (None, "last")


@pytest.mark.parametrize(("params", "error"), [
    ({"routing_key": "q"}, "payload is required"),
    ({"routing_key": "q", "payload": "x", "colour": 1}, "unknown option 'colour'"),
    ({"routing_key": "q", "payload": "x", "properties": {"flavour": "a"}},
     "properties.flavour: unknown property"),
    ({"routing_key": "q", "payload": "x", "options": {"immediate": True}},
     "options.immediate is not supported"),
])
async def test_a_publish_with_a_missing_or_unknown_key_is_an_error_naming_it(
    rabbit: Broker, tmp_path: Path, params: dict[str, Any], error: str
) -> None:
    _, policy = await load(tmp_path, POLICY)
    uri = f"amqp://guest:guest@127.0.0.1:{rabbit.port}/"
    assert error in await policy.call_custom_event("publish.bad", uri, params)


async def test_a_broker_that_is_not_there_fails_the_call(tmp_path: Path) -> None:
    _, policy = await load(tmp_path, POLICY)
    with pytest.raises(PolicyError):
        await policy.call_custom_event("connect", f"amqp://127.0.0.1:{free_port()}/")
    with pytest.raises(PolicyError, match="amqp:// or amqps://"):
        await policy.call_custom_event("connect", "http://127.0.0.1/")
