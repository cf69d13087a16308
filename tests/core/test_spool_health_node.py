"""An unhealthy spool holds delivery (``kumo.suspend_delivery_when_spool_unhealthy``), on a
real full disk: RocksDB spools on a small tmpfs, filled until a spool write fails, then
freed. Messages accepted before go back to their scheduled queue for their next retry
(tests/core/test_spool_hold_node.py has the details) and are delivered at the first retry
after the spool takes writes again."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.reliability.disk_fill import TmpfsUnavailable, fill, tmpfs, unfill
from kumocore.spool.health import HOLD
from kumocore.testing.node import HOSTNAME, SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from tests.support.admission import connect_from_peer, inject, liveness

READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
REASON = "the spool is not accepting writes"
#: Long enough for a message that is not held to reach the sink many times over.
QUIET = 1.5

POLICY = """
local kumo = require 'kumo'
kumo.on('pre_init', function()
  for _, name in ipairs({{'data', 'meta'}}) do
    kumo.define_spool {{ name = name, path = '{spool}/' .. name, kind = 'RocksDB',
                        min_free_space = 0, min_free_inodes = 0 }}
  end
end)
kumo.on('init', function()
  kumo.suspend_delivery_when_spool_unhealthy({suspend})
end)
-- held messages wait for their next retry (kumocore.queue.spool_hold): keep it short
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config {{ retry_interval = '1s', max_retry_interval = '1s' }}
end)
"""


@pytest.fixture
def spool_dir(tmp_path: Path) -> Iterator[Path]:
    try:
        with tmpfs(tmp_path / "spool", "8m") as directory:
            yield directory
    except TmpfsUnavailable as exc:
        pytest.skip(f"needs a real small filesystem and may not mount one: {exc}")


async def fill_until_a_write_fails(node: Node, spool: Path) -> int:
    """Fill the disk, then send large messages until one is refused; how many were
    accepted meanwhile (RocksDB may have room preallocated)."""
    fill(spool, leave=0)
    for n in range(20):
        try:
            await node.send(
                recipients=f"fill{n}@dest.test",
                message="Subject: f\r\n\r\n" + ("x" * 76 + "\r\n") * 2600,
            )
        except smtplib.SMTPException:
            return n  # the ones before were accepted
    raise AssertionError("the full disk never refused a message")


async def start_held(make_node: MakeNode, spool: Path, suspend: str) -> Node:
    node = await make_node(POLICY.format(spool=spool, suspend=suspend))
    status, _ = await node.admin(
        "POST",
        "/api/admin/suspend-ready-q/v1",
        {"name": READY_Q, "reason": "test", "duration": "1h"},
    )
    assert status == 200
    await node.send(recipients="before@dest.test")
    return node


async def lift_ready_q_suspension(node: Node) -> None:
    _, listed = await node.admin("GET", "/api/admin/suspend-ready-q/v1")
    for entry in listed:
        await node.admin("DELETE", "/api/admin/suspend-ready-q/v1", {"id": entry["id"]})


async def test_delivery_waits_while_the_spool_refuses_writes_and_resumes_after(
    spool_dir: Path,
    make_node: MakeNode,  # the spool disk outlives the node
) -> None:
    node = await start_held(make_node, spool_dir, "true")
    accepted = await fill_until_a_write_fails(node, spool_dir)
    assert HOLD.active
    banner = await asyncio.to_thread(connect_from_peer, node.smtp_port)
    assert banner == (421, f"4.3.2 {HOSTNAME} {REASON}. Try later")
    assert await inject(node, "http@dest.test") == (503, {"error": REASON})
    assert await liveness(node) == (503, REASON)
    await lift_ready_q_suspension(node)
    await asyncio.sleep(QUIET)
    assert node.sink is not None and node.sink.messages == []  # held: nothing sent
    unfill(spool_dir)
    received = await node.sink.wait_for(1 + accepted, timeout=15)
    assert not HOLD.active
    assert "before@dest.test" in {m.recipient for m in received}
    assert await liveness(node) == (200, "OK")
    await node.send(recipients="after@dest.test")  # reception is back too
    await node.sink.wait_for(2 + accepted)
    await asyncio.sleep(0.5)
    assert len(node.sink.messages) == 2 + accepted  # once each


async def test_with_suspension_off_delivery_goes_on_while_the_spool_is_unhealthy(
    spool_dir: Path,
    make_node: MakeNode,  # the spool disk outlives the node
) -> None:
    node = await start_held(make_node, spool_dir, "false")
    try:
        await fill_until_a_write_fails(node, spool_dir)
        assert not HOLD.active
        await lift_ready_q_suspension(node)
        assert node.sink is not None
        await node.sink.wait_for(1, timeout=10)
    finally:
        with contextlib.suppress(OSError):
            unfill(spool_dir)


async def test_suspend_delivery_when_spool_unhealthy_wants_a_boolean(
    make_node: MakeNode, tmp_path: Path
) -> None:
    with pytest.raises(Exception, match="expected a boolean"):
        await make_node(POLICY.format(spool=tmp_path, suspend="'yes'"))
