from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.hostile_mx import HostileMx
from bench.common.sink import RecordingSink
from tests.queue.harness import ZONES, Bench, ShapingPolicy


@pytest.fixture
def dns() -> Any:
    with TestDnsServer(dict(ZONES)) as server:
        yield server


@pytest.fixture
async def sink() -> AsyncIterator[RecordingSink]:
    async with RecordingSink() as server:
        yield server


@pytest.fixture
async def make_bench(
    dns: TestDnsServer, sink: RecordingSink
) -> AsyncIterator[Callable[..., Awaitable[Bench]]]:
    benches: list[Bench] = []

    async def make(**policy: Any) -> Bench:
        bench = await Bench(ShapingPolicy(sink_port=sink.port, **policy), dns, sink).start()
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        await bench.stop()


@pytest.fixture
async def mx() -> AsyncIterator[HostileMx]:
    """A receiving MX that starts benign (tests make it hostile: ``mx.mode = ...``)."""
    async with HostileMx("benign") as server:
        yield server
