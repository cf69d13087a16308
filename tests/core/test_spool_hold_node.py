"""What happens to the messages a held delivery keeps back, on real nodes: as KumoMTA's
``log_and_requeue_for_unhealthy_spool``, each one that would be attempted while the spool
is unhealthy goes back to its scheduled queue with a ``451 4.4.4`` ``Delayed`` record,
``requeue_message`` (context ``SpoolUnhealthy``, attempts incremented, no delay), one
attempt counted and its next retry on the queue's schedule. A message a connection took
just before the hold started is checked again before its SMTP transaction."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import kumocore
from bench.reliability.disk_fill import unfill
from kumocore.config import EgressPathConfig
from kumocore.queue.path import EgressPath
from kumocore.spool.health import HOLD
from kumocore.testing.node import SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from tests.core.test_spool_health_node import fill_until_a_write_fails, spool_dir
from tests.queue.delayed_support import split_delayed

__all__ = ["spool_dir"]  # the fixture, used here

READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
HELD = "KumoMTA internal: delivery suspended: spool unhealthy: the spool is not accepting writes"

POLICY = """
local kumo = require 'kumo'
kumo.on('pre_init', function()
  for _, name in ipairs({{'data', 'meta'}}) do
    kumo.define_spool {{ name = name, path = '{spool}/' .. name, kind = 'RocksDB',
                        min_free_space = 0, min_free_inodes = 0 }}
  end
end)
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config {{ retry_interval = '{retry}' }}
end)
kumo.on('requeue_message', function(msg, response, context, increment, delay)
  msg:set_meta('seen', string.format('%s|%s|%s|%s', response, table.concat(context, ','),
    tostring(increment), tostring(delay)))
end)
"""


async def in_ready_queue(node: Node, recipient: str) -> EgressPath:
    """The ready queue that holds ``recipient``'s message, once it does."""
    services = node.runtime.services
    assert services is not None
    deadline = time.monotonic() + 5
    while True:
        for path in services.queues.paths.values():
            if any(m.recipient.email == recipient for m in path.messages):
                return path
        assert time.monotonic() < deadline, "not in a ready queue"
        await asyncio.sleep(0.02)


def held_records(node: Node, recipient: str) -> list[dict[str, Any]]:
    return [r for r in node.log_sink.parsed("Delayed", recipient=recipient)
            if r["response"]["code"] == 451]  # fmt: skip


def context_records(node: Node, recipient: str) -> list[dict[str, Any]]:
    return [r for r in node.log_sink.parsed("Delayed", recipient=recipient)
            if r["response"]["code"] == 400]  # fmt: skip


def assert_held_record(record: dict[str, Any], site: str) -> None:
    response = record["response"]
    assert (response["code"], response["content"]) == (451, HELD)
    assert response["enhanced_code"] == {"class": 4, "subject": 4, "detail": 4}
    assert record["queue"] == "dest.test" and record["site"] == site


async def test_ready_queue_messages_go_back_to_their_queue_for_their_next_retry(
    spool_dir: Path, make_node: MakeNode
) -> None:
    node = await make_node(POLICY.format(spool=spool_dir, retry="1h"))
    status, _ = await node.admin(
        "POST", "/api/admin/suspend-ready-q/v1", {"name": READY_Q, "reason": "t", "duration": "1h"}
    )
    assert status == 200
    await node.send(recipients="before@dest.test")
    services = node.runtime.services
    assert services is not None
    path = await in_ready_queue(node, "before@dest.test")
    try:
        await fill_until_a_write_fails(node, spool_dir)
        held_at = time.time()
        assert HOLD.active
        await node.log_sink.wait_for("Delayed", recipient="before@dest.test", count=2)
        [held] = held_records(node, "before@dest.test")
        [context] = context_records(node, "before@dest.test")
    finally:
        unfill(spool_dir)
    assert_held_record(held, site="dest.test")  # the scheduled queue, as insert_ready logs
    assert held["num_attempts"] == 0  # logged before the attempt is counted
    assert split_delayed(context)[0] == "SpoolUnhealthy"
    assert len(path) == 0  # none left in the ready queue
    [waiting] = [r for r in services.queues.queued.values()
                 if r.message.recipient.email == "before@dest.test"]  # fmt: skip
    assert waiting.message.num_attempts == 1
    # the first retry: retry_interval, jittered by at most 30 s either way
    assert waiting.due is not None and 3570 - 1 <= waiting.due - held_at <= 3630
    assert waiting.message.get_meta("seen") == f"451 4.4.4 {HELD}|SpoolUnhealthy|true|nil"
    await asyncio.sleep(0.5)
    assert node.sink is not None and node.sink.messages == []  # waits for its retry


async def test_messages_falling_due_while_held_are_deferred_again_then_delivered(
    spool_dir: Path, make_node: MakeNode
) -> None:
    node = await make_node(POLICY.format(spool=spool_dir, retry="1s"))
    await node.admin(
        "POST", "/api/admin/suspend-ready-q/v1", {"name": READY_Q, "reason": "t", "duration": "1h"}
    )
    await node.send(recipients="before@dest.test")
    try:
        await fill_until_a_write_fails(node, spool_dir)
        assert HOLD.active
        # due again after 1 s, then 2 s: each time it enters its ready queue, deferred
        deadline = time.monotonic() + 10
        while len(held_records(node, "before@dest.test")) < 2:
            assert time.monotonic() < deadline, node.log_sink.parsed("Delayed")
            await asyncio.sleep(0.05)
    finally:
        unfill(spool_dir)
    first, second = held_records(node, "before@dest.test")[:2]
    assert (first["num_attempts"], second["num_attempts"]) == (0, 1)
    assert node.sink is not None and node.sink.messages == []
    _, listed = await node.admin("GET", "/api/admin/suspend-ready-q/v1")
    for entry in listed:
        await node.admin("DELETE", "/api/admin/suspend-ready-q/v1", {"id": entry["id"]})
    received = await node.sink.wait_for(1, timeout=15)
    assert "before@dest.test" in {m.recipient for m in received}


async def test_a_message_taken_before_the_hold_is_not_sent(make_node: MakeNode) -> None:
    started: list[Node] = []

    class OnePerThreeSeconds:
        @kumocore.hookimpl
        def kumo_get_egress_path_config(self) -> EgressPathConfig:
            sink = started[0].sink
            assert sink is not None
            return EgressPathConfig.from_options(
                {"smtp_port": sink.port, "prohibited_hosts": [], "max_message_rate": "1/3s"}
            )

    started.append(await make_node(spool="rocksdb", plugins=[OnePerThreeSeconds()]))
    node = started[0]
    services = node.runtime.services
    assert services is not None and node.sink is not None
    await node.send(recipients=["first@dest.test", "second@dest.test"])
    await node.sink.wait_for(1)
    [path] = services.queues.paths.values()
    deadline = time.monotonic() + 5
    # the connection holds the second message while the message rate makes it wait
    while path.messages or "MessageRateThrottled" not in [d.phase for d in path.dispatchers]:
        assert time.monotonic() < deadline, (
            len(path.messages),
            [d.phase for d in path.dispatchers],
            [(r["type"], r["recipient"]) for r in node.log_sink.parsed()],
        )
        await asyncio.sleep(0.01)
    health = node.server.spool_health
    health.interval = 60.0  # no probe clears it during the test
    health.write_failed()  # a spool write fails now
    assert HOLD.active
    await node.log_sink.wait_for("Delayed", recipient="second@dest.test", count=2, timeout=6)
    [held] = held_records(node, "second@dest.test")
    assert_held_record(held, site=READY_Q)  # the ready queue whose connection had it
    await asyncio.sleep(0.3)
    assert [m.recipient for m in node.sink.messages] == ["first@dest.test"]
    [waiting] = [r for r in services.queues.queued.values()
                 if r.message.recipient.email == "second@dest.test"]  # fmt: skip
    assert waiting.message.num_attempts == 1 and waiting.due is not None


async def test_a_held_message_whose_next_retry_is_past_its_max_age_expires(
    make_node: MakeNode,
) -> None:
    policy = """
local kumo = require 'kumo'
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { retry_interval = '1h', max_age = '10m' }
end)
"""
    node = await make_node(policy)
    await node.admin(
        "POST", "/api/admin/suspend-ready-q/v1", {"name": READY_Q, "reason": "t", "duration": "1h"}
    )
    await node.send(recipients="old@dest.test")
    await in_ready_queue(node, "old@dest.test")
    health = node.server.spool_health
    health.interval = 60.0  # no probe clears it during the test
    health.write_failed()
    [expired] = await node.log_sink.wait_for("Expiration", recipient="old@dest.test")
    assert expired["response"]["code"] == 551
    assert_held_record(held_records(node, "old@dest.test")[0], site="dest.test")
    assert context_records(node, "old@dest.test") == []  # it does not wait: it expired
    services = node.runtime.services
    assert services is not None and not services.queues.queued
