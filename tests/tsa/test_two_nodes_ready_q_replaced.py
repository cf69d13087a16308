"""Two ``kumocore serve`` nodes sharing one real Redis: a ready-queue suspension that a
later one of the same queue replaced never comes back, on either node.

Node A suspends the queue for an hour, node B right after (before either node synced the
other's) for two seconds. As in KumoMTA, the later suspension replaces the earlier one, so
once it is over the queue is free on both nodes: the hour-long one, still in the store,
must not hold it again at the next automation sync (the nodes used to apply it again).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.tsa.test_two_nodes_ready_q import PATH, READY_Q, dns, fleet, sink
from tests.tsa.tsa_fleet import DOMAIN, Node, ThrottlingSink, inject, wait_until

pytestmark = pytest.mark.slow

__all__ = ["dns", "fleet", "sink"]  # the fixtures, shared with the module they come from


async def test_a_replaced_suspension_does_not_hold_again_once_the_later_one_is_over(
    fleet: tuple[Node, Node], sink: ThrottlingSink
) -> None:
    a, b = fleet
    status, earlier = await a.api("POST", PATH, {"name": READY_Q, "reason": "long",
                                                 "duration": "1h"})  # fmt: skip
    assert status == 200, earlier
    status, later = await b.api("POST", PATH, {"name": READY_Q, "reason": "short",
                                               "duration": "2s"})  # fmt: skip
    assert status == 200, later

    async def later_on_both() -> bool:
        answers = [await node.api("GET", PATH) for node in (a, b)]
        return all([s["id"] for s in listed] == [later["id"]] for _, listed in answers)

    await wait_until(later_on_both, 1.5, "both nodes to hold the later suspension")
    await asyncio.sleep(3)  # the later one is over; several automation syncs (every 0.5 s)
    for node in (a, b):
        assert await node.api("GET", PATH) == (200, []), f"held again on node {node.name}"
    await asyncio.gather(inject(a, [f"a@{DOMAIN}"]), inject(b, [f"b@{DOMAIN}"]))
    await sink.wait_for(2, timeout=20)
    status, body = await a.api("DELETE", PATH, {"id": earlier["id"]})
    assert status == 404, body  # replaced: it cannot be cancelled any more
