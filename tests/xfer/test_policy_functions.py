"""``kumo.xfer.*`` in a ``requeue_message`` handler, between two real nodes."""

from __future__ import annotations

import socket

from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode

POLICY = """
local kumo = require 'kumo'
kumo.on('requeue_message', function(msg)
  local target = kumo.xfer.get_xfer_target(msg)
  if target then
    msg:set_meta('was_bound_for', target)
    kumo.xfer.cancel_xfer(msg, 'target is down')
  elseif not msg:get_meta('was_bound_for') then
    kumo.xfer.xfer_in_requeue(msg, 'TARGET', {}, false, '2h', 'draining')
  end
end)
"""


async def _source(make_node: MakeNode, target: str) -> Node:
    """A node whose example.com queue is suspended: each message fails once, and the
    policy's requeue_message handler sends it to ``target``."""
    node = await make_node(POLICY.replace("TARGET", target))
    status, _ = await node.admin(
        "POST", "/api/admin/suspend/v1", {"reason": "r", "duration": "1d", "domain": "example.com"}
    )
    assert status == 200
    return node


async def test_requeue_handler_transfers_the_message_keeping_its_retry_time(
    make_node: MakeNode,
) -> None:
    target = await make_node()
    source = await _source(make_node, target.http_url)
    await source.send()
    [rebind] = await source.wait_for("AdminRebind")
    xfer_queue = f"{target.http_url}/.xfer.kumomta.internal"
    assert rebind["queue"] == xfer_queue
    assert rebind["response"]["content"] == f"Rebound from example.com to {xfer_queue}: draining"
    [record] = await target.wait_for("XferIn")
    assert record["queue"] == "example.com"
    services = target.runtime.services
    assert services is not None
    [queued] = services.queues.queued.values()
    assert queued.due is not None and queued.due > record["created"] + 7000  # the '2h' delay
    await source.wait_for("XferOut")


async def test_requeue_handler_cancels_a_transfer_whose_target_is_down(
    make_node: MakeNode,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    source = await _source(make_node, url)
    await source.send()
    rebinds = await source.wait_for("AdminRebind", count=2)
    assert [r["queue"] for r in rebinds] == [f"{url}/.xfer.kumomta.internal", "example.com"]
    assert rebinds[1]["response"]["content"].endswith(": target is down")
    assert rebinds[1]["meta"]["was_bound_for"] == f"{url}/"
    assert "xfer_queue_info" not in rebinds[1]["meta"]


async def test_xfer_refuses_a_target_that_is_not_an_http_url(make_node: MakeNode) -> None:
    source = await _source(make_node, "ftp://elsewhere")
    await source.send()
    await source.wait_for("TransientFailure")
    assert source.logs("AdminRebind") == []  # the handler failed: the message stays put
