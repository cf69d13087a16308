"""Memory limits on a running node: load shedding over the soft limit, bodies left on
disk over the low threshold, caches emptied — KumoMTA's memory management
(docs/memory.md). Real listeners on 127.0.0.1, clients bound to 127.0.0.5, a RocksDB
spool, the recording sink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import kumocore
from kumocore.node.memory import MEMORY
from kumocore.testing.node import HOSTNAME, SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from tests.support.admission import connect_from_peer, inject, liveness

READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
HUGE = 1 << 50
SHED = f"4.3.2 {HOSTNAME} load shedding. Try later"
BODY = ("body " * 19 + "body\r\n") * 100


@pytest.fixture(autouse=True)
async def fresh_memory_state() -> AsyncIterator[None]:
    MEMORY.reset()
    yield
    MEMORY.reset()


async def test_over_the_soft_limit_smtp_and_http_are_turned_away_and_come_back(
    make_node: MakeNode,
) -> None:
    node = await make_node(spool="rocksdb")
    await node.send(recipients="before@dest.test")
    kumocore.set_memory_soft_limit(1)  # any process uses more than one byte
    assert MEMORY.over_limit
    assert await asyncio.to_thread(connect_from_peer, node.smtp_port) == (421, SHED)
    status, answer = await inject(node, "http@dest.test")
    assert (status, answer) == (503, {"error": "load shedding"})
    assert await liveness(node) == (503, "load shedding")

    kumocore.set_memory_soft_limit(HUGE)
    assert not MEMORY.over_limit
    assert (await asyncio.to_thread(connect_from_peer, node.smtp_port))[0] == 220
    await node.send(recipients="after@dest.test")
    status, answer = await inject(node, "http.after@dest.test")
    assert status == 200 and answer["success_count"] == 1
    assert await liveness(node) == (200, "OK")
    assert node.sink is not None
    await node.sink.wait_for(3)
    await asyncio.sleep(0.3)  # nothing refused arrives late
    delivered = sorted(m.recipient for m in node.sink.messages)
    assert delivered == ["after@dest.test", "before@dest.test", "http.after@dest.test"]


async def test_the_state_change_is_logged_both_ways(
    make_node: MakeNode, capsys: pytest.CaptureFixture[str]
) -> None:
    await make_node()
    kumocore.set_memory_soft_limit(1)
    kumocore.set_memory_soft_limit(HUGE)
    err = capsys.readouterr()
    text = err.out + err.err
    assert "exceeds limit 1 B" in text
    assert "is back within limit" in text


async def test_a_lua_policy_sets_and_reads_the_limits_in_pre_init(
    make_node: MakeNode,
) -> None:
    policy = """
local kumo = require 'kumo'
kumo.on('pre_init', function()
  kumo.set_memory_hard_limit(4 * 1024 * 1024 * 1024)
  kumo.set_memory_soft_limit(1)
  kumo.set_memory_low_thresh(1)
end)
kumo.on('init', function()
  assert(kumo.get_memory_hard_limit() == 4 * 1024 * 1024 * 1024)
  assert(kumo.get_memory_soft_limit() == 1)
  assert(kumo.get_memory_low_thresh() == 1)
end)
"""
    node = await make_node(policy)
    assert await asyncio.to_thread(connect_from_peer, node.smtp_port) == (421, SHED)


PYTHON_POLICY = """
from typing import Any
from kumocore import hookimpl

@hookimpl
def kumo_pre_init(kumo: Any) -> None:
    kumo.set_memory_soft_limit(1)
    assert kumo.get_memory_soft_limit() == 1
"""


async def test_a_python_policy_gets_the_same_functions(make_node: MakeNode) -> None:
    node = await make_node(PYTHON_POLICY, language="python")
    assert kumocore.get_memory_soft_limit() == 1
    assert await asyncio.to_thread(connect_from_peer, node.smtp_port) == (421, SHED)


async def test_a_limit_that_is_not_a_byte_count_is_refused_at_load(
    make_node: MakeNode,
) -> None:
    policy = """
local kumo = require 'kumo'
kumo.on('pre_init', function() kumo.set_memory_soft_limit('lots') end)
"""
    with pytest.raises(Exception, match="set_memory_soft_limit: expected a whole number"):
        await make_node(policy)


async def held_message(node: Node, recipient: str) -> kumocore.Message:
    """Send ``recipient`` a message and return it, held in its suspended ready queue."""
    status, _ = await node.admin(
        "POST",
        "/api/admin/suspend-ready-q/v1",
        {"name": READY_Q, "reason": "test", "duration": "1h"},
    )
    assert status == 200
    await node.send(recipients=recipient, message=f"Subject: t\r\nTo: {recipient}\r\n\r\n{BODY}")
    services = node.runtime.services
    assert services is not None
    for _ in range(100):
        for path in services.queues.paths.values():
            for message in path.messages:
                if message.recipient.email == recipient:
                    return message
        await asyncio.sleep(0.02)
    raise AssertionError("message not in a ready queue")


async def release_and_receive(node: Node, count: int) -> list[bytes]:
    _, listed = await node.admin("GET", "/api/admin/suspend-ready-q/v1")
    for entry in listed:
        await node.admin("DELETE", "/api/admin/suspend-ready-q/v1", {"id": entry["id"]})
    assert node.sink is not None
    return [m.data for m in await node.sink.wait_for(count)]


async def test_over_the_low_threshold_a_body_entering_a_ready_queue_stays_on_disk(
    make_node: MakeNode,
) -> None:
    node = await make_node(spool="rocksdb")
    kept = await held_message(node, "kept@dest.test")
    assert kept.data  # below the threshold the body stays in memory
    kumocore.set_memory_low_thresh(1)
    assert MEMORY.low and not MEMORY.over_limit
    dropped = await held_message(node, "dropped@dest.test")
    assert dropped.data == b"" and dropped.size > 10000
    received = await release_and_receive(node, 2)
    assert all(BODY.encode() in data for data in received)


async def test_no_shrink_policy_keeps_bodies_in_memory_when_low(make_node: MakeNode) -> None:
    from kumocore.config import EgressPathConfig

    started: list[Node] = []

    class Keep:
        @kumocore.hookimpl
        def kumo_get_egress_path_config(self) -> EgressPathConfig:
            sink = started[0].sink
            assert sink is not None
            return EgressPathConfig.from_options(
                {
                    "smtp_port": sink.port,
                    "prohibited_hosts": [],
                    "low_memory_reduction_policy": "NoShrink",
                }
            )

    started.append(await make_node(spool="rocksdb", plugins=[Keep()]))
    node = started[0]
    kumocore.set_memory_low_thresh(1)
    kept = await held_message(node, "kept@dest.test")
    assert kept.data


async def test_reaching_the_soft_limit_drops_queued_bodies_and_empties_caches(
    make_node: MakeNode,
) -> None:
    policy = """
local kumo = require 'kumo'
local calls = 0
local cached = kumo.memoize(function(k) calls = calls + 1; return calls end,
                            {name = 'memtest', ttl = '1h', capacity = 10})
kumo.on('smtp_server_message_received', function(msg)
  msg:set_meta('memo', cached('same'))
end)
"""
    node = await make_node(policy, spool="rocksdb")
    first = await held_message(node, "first@dest.test")
    assert first.data and first.get_meta("memo") == 1
    resolver = node.runtime.resolver
    assert len(resolver._cache) > 0  # the sink's MX answer
    kumocore.set_memory_soft_limit(1)
    assert first.data == b""  # shrunk where it waits
    assert len(resolver._cache) == 0
    kumocore.set_memory_soft_limit(HUGE)
    second = await held_message(node, "second@dest.test")
    assert second.get_meta("memo") == 2  # the memoized value was computed again
    received = await release_and_receive(node, 2)
    assert all(BODY.encode() in data for data in received)


async def test_without_a_spool_on_disk_bodies_stay_in_memory_when_low(
    make_node: MakeNode,
) -> None:
    node = await make_node(spool="memory")  # dropping a body would free nothing
    kumocore.set_memory_low_thresh(1)
    kept = await held_message(node, "kept@dest.test")
    assert kept.data
    kumocore.set_memory_soft_limit(1)
    assert kept.data
    kumocore.set_memory_soft_limit(HUGE)
    [data] = await release_and_receive(node, 1)
    assert BODY.encode() in data
