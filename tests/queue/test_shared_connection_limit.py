"""Workers of one node share a connection limit (the node throttle store): a worker whose
connections sit idle must not starve another worker's queue for its whole idle_timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumocore.throttle.local import LocalThrottleStore
from kumocore.throttle.node import NodeThrottleServer, NodeThrottleStore, socket_path

# Long enough that waiting it out would be plain in the timings below.
IDLE = 20.0


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeThrottleServer]:
    server = NodeThrottleServer(socket_path(tmp_path))
    server.start()
    yield server
    server.stop()


async def test_an_idle_connection_gives_its_slot_to_a_waiting_worker(make_bench, node) -> None:
    path = {"connection_limit": 1, "idle_timeout": f"{IDLE}s"}
    first, second = await make_bench(path=path), await make_bench(path=path)
    for bench in (first, second):
        bench.queues.egress.throttles = NodeThrottleStore(node.path)
    await first.inject("a@example.com")
    await first.wait_for_records("Delivery", 1)
    # first's connection now idles, holding the node's only slot.
    (ready,) = first.queues.paths.values()
    assert ready.connections == 1
    started = time.monotonic()
    await second.inject("b@example.com")
    await second.wait_for_records("Delivery", 1, timeout=IDLE / 2)
    assert time.monotonic() - started < 5.0
    assert ready.connections == 0  # it gave the slot back rather than idle on
    assert first.sink.state.max_active["127.0.0.1"] <= 1  # the limit still held


async def test_an_idle_connection_stays_open_while_nobody_waits(make_bench, node) -> None:
    bench = await make_bench(path={"connection_limit": 1, "idle_timeout": f"{IDLE}s"})
    bench.queues.egress.throttles = NodeThrottleStore(node.path)
    await bench.inject("a@example.com")
    await bench.wait_for_records("Delivery", 1)
    (ready,) = bench.queues.paths.values()
    await asyncio.sleep(1.0)  # several contention checks, none positive
    assert ready.connections == 1  # reused by the next message, as before
    await bench.inject("b@example.com")
    await bench.wait_for_records("Delivery", 2)
    assert len(bench.sink.state.per_connection) == 1


async def test_a_refused_lease_marks_its_key_wanted_for_a_second() -> None:
    now = [0]
    store = LocalThrottleStore(clock=lambda: now[0])
    lease = await store.acquire_lease("k", 1, 60)
    assert lease is not None and not await store.lease_wanted("k")
    assert await store.acquire_lease("k", 1, 60) is None
    assert await store.lease_wanted("k")
    now[0] += 1_100_000_000
    assert not await store.lease_wanted("k")
    await store.release_lease(lease)
    assert await store.acquire_lease("k", 1, 60) is not None
    assert not await store.lease_wanted("k")  # the waiter got its unit


async def test_the_node_store_reports_a_key_another_worker_waits_for(node) -> None:
    holder, waiter = NodeThrottleStore(node.path), NodeThrottleStore(node.path)
    assert await holder.acquire_lease("k", 1, 60) is not None
    assert not await holder.lease_wanted("k")
    assert await waiter.acquire_lease("k", 1, 60) is None
    assert await holder.lease_wanted("k")
    await holder.close()
    await waiter.close()
