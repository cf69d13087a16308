"""``serve --workers 2``: a scheduled-queue suspension that replaces another with the same
selectors does so on both workers, and suspensions asked at the same moment through both
workers leave the same one held on each (the later by its time-ordered id)."""

from __future__ import annotations

import asyncio

import pytest

from kumocore.testing.smtp_sink import RecordingSink
from tests.core.test_node_ready_q import Workers, ask_worker, node

pytestmark = pytest.mark.slow

__all__ = ["node"]  # the fixture, shared with the module it comes from

SUSPEND = "/api/admin/suspend/v1"
SELECTORS = {"domain": "dest.test", "tenant": "t1"}


async def held(workers: Workers) -> list[list[str]]:
    return [[s["id"] for s in await ask_worker(socket, SUSPEND)]
            for socket in workers.sockets()]  # fmt: skip


async def test_a_second_suspension_replaces_the_first_on_both_workers(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, _ = node
    status, first, _ = await workers.api("POST", SUSPEND, {**SELECTORS, "reason": "first"})
    assert status == 200
    status, second, _ = await workers.api("POST", SUSPEND, {**SELECTORS, "reason": "second"})
    assert status == 200
    assert await held(workers) == [[second["id"]], [second["id"]]]
    status, _, _ = await workers.api("DELETE", SUSPEND, {"id": first["id"]})
    assert status == 404


async def test_suspensions_asked_at_once_leave_one_and_the_same_on_both_workers(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, _ = node

    async def one(n: int) -> str:
        status, made, _ = await workers.api("POST", SUSPEND, {**SELECTORS, "reason": f"r{n}"})
        assert status == 200, made
        return str(made["id"])

    for _ in range(3):
        made = await asyncio.gather(*(one(n) for n in range(8)))
        ids = await held(workers)
        assert len(ids[0]) == 1 and ids[0] == ids[1] and ids[0][0] in made, ids
