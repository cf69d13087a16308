"""The node throttle store: one set of limits for all workers, served over a Unix socket."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumocore.throttle.node import NodeThrottleServer, NodeThrottleStore, socket_path
from kumocore.throttle.spec import ThrottleSpec
from kumocore.throttle.store import LeaseLostError


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NodeThrottleServer]:
    started = NodeThrottleServer(socket_path(tmp_path))
    started.start()
    yield started
    started.stop()


async def test_a_connection_limit_is_shared_by_all_workers(server: NodeThrottleServer) -> None:
    first, second = NodeThrottleStore(server.path), NodeThrottleStore(server.path)
    assert await first.acquire_lease("k", 2, 30) is not None
    held = await second.acquire_lease("k", 2, 30)
    assert held is not None
    assert await first.acquire_lease("k", 2, 30) is None  # 2 of 2 taken, across workers
    await second.release_lease(held)
    assert await first.acquire_lease("k", 2, 30) is not None
    await first.close()
    await second.close()


async def test_a_rate_is_shared_by_all_workers(server: NodeThrottleServer) -> None:
    first, second = NodeThrottleStore(server.path), NodeThrottleStore(server.path)
    spec = ThrottleSpec.parse("4/min")
    results = [await (first if n % 2 else second).throttle("r", spec) for n in range(5)]
    assert [r.throttled for r in results] == [False, False, False, False, True]
    assert results[-1].retry_after > 0
    await first.close()
    await second.close()


async def test_an_impossible_quantity_round_trips_an_infinite_retry(
    server: NodeThrottleServer,
) -> None:
    store = NodeThrottleStore(server.path)
    result = await store.throttle("r", ThrottleSpec.parse("2/s"), quantity=10)
    assert result.throttled and math.isinf(result.retry_after)
    await store.close()


async def test_a_worker_that_goes_away_gives_its_connections_back(
    server: NodeThrottleServer,
) -> None:
    dying, other = NodeThrottleStore(server.path), NodeThrottleStore(server.path)
    assert await dying.acquire_lease("k", 1, 3600) is not None
    assert await other.acquire_lease("k", 1, 3600) is None
    await dying.close()  # like a killed worker: its socket closes
    for _ in range(50):
        if await other.acquire_lease("k", 1, 3600) is not None:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the dead worker's lease was not released")
    await other.close()


async def test_renewing_a_lapsed_lease_raises_lease_lost(server: NodeThrottleServer) -> None:
    store = NodeThrottleStore(server.path)
    lease = await store.acquire_lease("k", 1, 0.05)
    assert lease is not None
    await asyncio.sleep(0.1)
    with pytest.raises(LeaseLostError):
        await store.renew_lease(lease, 30)
    await store.close()


async def test_a_worker_reconnects_after_the_store_restarts(tmp_path: Path) -> None:
    path = socket_path(tmp_path)
    first = NodeThrottleServer(path)
    first.start()
    store = NodeThrottleStore(path)
    assert await store.acquire_lease("k", 1, 30) is not None
    first.stop()
    second = NodeThrottleServer(path)
    second.start()
    try:
        lease = None
        for _ in range(2):  # a call may still see the old connection fail first
            try:
                lease = await store.acquire_lease("k", 1, 30)
                break
            except ConnectionError:
                continue
        assert lease is not None  # a new connection, and the new store's fresh limits
    finally:
        await store.close()
        second.stop()


@pytest.mark.parametrize(
    "line",
    [b"[1, 2]\n", b'{"id": 1, "op": "throttle", "spec": "x"}\n', b'{"op": "acquire"}\n',
     b"not json\n", b"x" * 200_000 + b"\n"],
    ids=["list", "bad-spec", "no-id", "not-json", "over-the-line-limit"],
)
async def test_a_request_of_the_wrong_shape_drops_that_connection_alone(
    server: NodeThrottleServer, line: bytes,
) -> None:
    assert server._loop is not None
    escaped: list[dict[str, object]] = []
    server._loop.call_soon_threadsafe(
        server._loop.set_exception_handler, lambda _loop, context: escaped.append(context))
    holder = NodeThrottleStore(server.path)
    await holder.acquire_lease("k", 1, 3600)
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    writer.write(line)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()
    other = NodeThrottleStore(server.path)  # the store still serves everyone else
    assert await other.acquire_lease("k", 1, 3600) is None  # the holder's lease stands
    await holder.close()
    await asyncio.sleep(0.1)
    assert escaped == []
    await other.close()
