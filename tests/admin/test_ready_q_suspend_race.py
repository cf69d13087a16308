"""``serve --workers 2``: suspensions of one ready queue asked at the same moment, through
both workers, leave every worker holding the same one suspension.

KumoMTA keeps one suspension per ready queue name, the last one made replacing the
earlier one. Each worker of a kumocore node applies the suspension it received and the one
its peer passed on, in whatever order they arrive; both must agree on which is the last
(the newest by its time-ordered id), or each worker holds another id and a cancel of the
listed one leaves the queue held on the other worker.

A real supervisor and two workers (the node of :mod:`tests.core.test_node_ready_q`), the
requests on fresh connections to the public listener so that the kernel spreads them over
both workers, and a real SMTP sink.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kumocore.testing.smtp_sink import RecordingSink
from tests.core.test_node_ready_q import PATH, READY_Q, Workers, ask_worker, node, send

pytestmark = pytest.mark.slow

__all__ = ["node"]  # the fixture, shared with the module it comes from

#: Requests per round and rounds: with both workers answering some of each round, the
#: old code (each worker keeping whichever arrived last) disagreed in most rounds.
AT_ONCE = 8
ROUNDS = 4


async def held_ids(workers: Workers) -> list[list[str]]:
    """The suspension ids each worker holds, asked over its private socket."""
    return [[s["id"] for s in await ask_worker(socket, PATH)] for socket in workers.sockets()]


async def suspend_at_once(workers: Workers, round_no: int) -> list[str]:
    async def one(n: int) -> str:
        body = {"name": READY_Q, "reason": f"round {round_no} request {n}", "duration": "1h"}
        status, created, headers = await workers.api("POST", PATH, body)
        assert status == 200 and headers["X-Kumocore-Workers"] == "2/2", created
        return str(created["id"])

    return list(await asyncio.gather(*(one(n) for n in range(AT_ONCE))))


async def test_simultaneous_suspensions_of_one_queue_leave_one_id_on_every_worker(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, sink = node
    for round_no in range(ROUNDS):
        made = await suspend_at_once(workers, round_no)
        held = await held_ids(workers)
        assert len(held) == 2 and held[0] == held[1] and len(held[0]) == 1, (round_no, held)
        assert held[0][0] in made
        # The one listed for the node is the one both hold, and cancelling it frees both.
        status, listed, _ = await workers.api("GET", PATH)
        assert [s["id"] for s in listed] == held[0]
        status, answer, _ = await workers.api("DELETE", PATH, {"id": held[0][0]})
        assert status == 200, answer
        assert await held_ids(workers) == [[], []], round_no
    await send(workers.smtp_port, 10)
    await sink.wait_for(10, timeout=30)


async def test_the_replaced_suspension_cannot_be_cancelled_and_the_newest_one_holds(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, sink = node
    made = await suspend_at_once(workers, 0)
    (winner,) = (await held_ids(workers))[0]
    for replaced in [i for i in made if i != winner]:
        status, answer, _ = await workers.api("DELETE", PATH, {"id": replaced})
        assert status == 404, (replaced, answer)
    await send(workers.smtp_port, 6)
    await asyncio.sleep(2.0)
    assert sink.messages == []  # still held by the suspension that won, on both workers
    status, _, _ = await workers.api("DELETE", PATH, {"id": winner})
    assert status == 200
    await sink.wait_for(6, timeout=30)


def reasons(listed: list[dict[str, Any]]) -> list[str]:
    return [s["reason"] for s in listed]


async def test_a_later_suspension_replaces_the_earlier_one_on_both_workers(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, _ = node
    first = {"name": READY_Q, "reason": "first", "duration": "1h"}
    status, made_first, _ = await workers.api("POST", PATH, first)
    assert status == 200
    status, made_second, _ = await workers.api("POST", PATH, {**first, "reason": "second"})
    assert status == 200
    for socket in workers.sockets():
        listed = await ask_worker(socket, PATH)
        assert [(s["id"], s["reason"]) for s in listed] == [(made_second["id"], "second")]
    status, _, _ = await workers.api("DELETE", PATH, {"id": made_first["id"]})
    assert status == 404
