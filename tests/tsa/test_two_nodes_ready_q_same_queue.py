"""Two ``kumocore serve`` nodes sharing one real Redis, each asked at the same moment to
suspend the same ready queue (an operator's script calling every node, as KumoMTA needs):
both suspensions reach the store, the newer one holds. Cancelling the suspension the
nodes list must end the hold on both, not let the older, replaced one come back at the
next automation sync."""

from __future__ import annotations

import asyncio

import pytest

from tests.tsa.test_two_nodes_ready_q import PATH, READY_Q, dns, fleet, sink
from tests.tsa.tsa_fleet import DOMAIN, Node, ThrottlingSink, inject, wait_until

pytestmark = pytest.mark.slow

__all__ = ["dns", "fleet", "sink"]  # the fixtures, shared with the module they come from


async def test_cancelling_the_listed_suspension_of_a_queue_suspended_on_both_ends_it(
    fleet: tuple[Node, Node], sink: ThrottlingSink
) -> None:
    a, b = fleet
    body = {"name": READY_Q, "reason": "block", "duration": "10m"}
    (status_a, made_a), (status_b, made_b) = await asyncio.gather(
        a.api("POST", PATH, body), b.api("POST", PATH, body))
    assert (status_a, status_b) == (200, 200), (made_a, made_b)
    listed: list[dict[str, str]] = []

    async def one_listed_on_both() -> bool:
        nonlocal listed
        answers = [await node.api("GET", PATH) for node in (a, b)]
        listed = answers[0][1]
        return answers[0] == answers[1] and len(listed) == 1

    await wait_until(one_listed_on_both, 5, "both nodes to list the same one suspension")
    assert listed[0]["id"] in (made_a["id"], made_b["id"])
    status, answer = await a.api("DELETE", PATH, {"id": listed[0]["id"]})
    assert status == 200, answer
    await asyncio.sleep(2)  # several automation syncs (every 0.5 s)
    for node in (a, b):
        assert await node.api("GET", PATH) == (200, []), f"held again on node {node.name}"
    await asyncio.gather(inject(a, [f"a@{DOMAIN}"]), inject(b, [f"b@{DOMAIN}"]))
    await sink.wait_for(2, timeout=20)
