"""A ready-queue suspension across two ``kumocore serve`` nodes sharing one real Redis.

Made through node A's admin API, it holds the ready queue on node B too (as the existing
admin suspensions do, through the automation store); cancelled through node B, both nodes
deliver again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.redis_server import RedisServer, require_redis_server
from tests.tsa.tsa_fleet import (
    DOMAIN,
    MX_HOST,
    Node,
    ThrottlingSink,
    inject,
    shaping_file,
    wait_until,
)

pytestmark = pytest.mark.slow

PATH = "/api/admin/suspend-ready-q/v1"
READY_Q = f"unspecified->{MX_HOST}@smtp_client"


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    zones: dict[str, dict[str, Any]] = {DOMAIN: {"MX": [(10, MX_HOST)]},
                                        MX_HOST: {"A": ["127.0.0.1"]}}
    with TestDnsServer(zones) as server:
        yield server


@pytest.fixture
async def sink() -> AsyncIterator[ThrottlingSink]:
    started = await ThrottlingSink().start()
    yield started
    await started.stop()


@pytest.fixture
async def fleet(
    tmp_path: Path, dns: TestDnsServer, sink: ThrottlingSink
) -> AsyncIterator[tuple[Node, Node]]:
    require_redis_server()
    shaping = tmp_path / "shaping.toml"
    shaping.write_text(shaping_file(sink.port, ""))
    with RedisServer() as redis:
        env = {"TSA_DNS": dns.address, "TSA_REDIS": redis.url, "TSA_SHAPING": str(shaping),
               "TSA_STORE": "redis-throttles"}  # fmt: skip
        nodes = (Node("a", tmp_path, env), Node("b", tmp_path, env))
        try:
            for node in nodes:
                node.start()
            await asyncio.gather(*(n.wait_ready() for n in nodes))
            yield nodes
        finally:
            for node in nodes:
                node.stop()


async def test_a_ready_queue_suspended_on_one_node_holds_on_both_until_cancelled_on_the_other(
    fleet: tuple[Node, Node], sink: ThrottlingSink
) -> None:
    a, b = fleet
    status, created = await a.api("POST", PATH, {"name": READY_Q, "reason": "block",
                                                 "duration": "10m"})  # fmt: skip
    assert status == 200, created

    async def listed_on_b() -> bool:
        status, listed = await b.api("GET", PATH)
        return status == 200 and [s["id"] for s in listed] == [created["id"]]

    await wait_until(listed_on_b, 5, "the ready-queue suspension on node B")
    await asyncio.gather(inject(a, [f"a{n}@{DOMAIN}" for n in range(3)]),
                         inject(b, [f"b{n}@{DOMAIN}" for n in range(3)]))  # fmt: skip
    await asyncio.sleep(2)
    assert sink.messages == [], "a node delivered on a suspended ready queue"

    status, body = await b.api("DELETE", PATH, {"id": created["id"]})
    assert (status, body) == (200, {"id": created["id"]})
    await sink.wait_for(6, timeout=20)

    async def gone_on_a() -> bool:
        return await a.api("GET", PATH) == (200, [])

    await wait_until(gone_on_a, 5, "node A to drop the suspension cancelled on node B")
    status, body = await a.api("DELETE", PATH, {"id": created["id"]})
    assert status == 404, body
