"""Fixtures for the delivery tests that run a whole node against scripted MX hosts: a
test DNS server whose MX sets point at loopback addresses 127.0.0.2-4 (hosts ``a``,
``b``, ``c`` of :class:`tests.support.mx_farm.MxFarm`), and benches built on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from tests.queue.harness import Bench, ShapingPolicy

ADDRESSES = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}

FARM_ZONES: dict[str, Any] = {
    # one host per preference: a session's plan is a, b, c in that order
    "plan.example": {"MX": [(10, "a.farm.test"), (20, "b.farm.test"), (30, "c.farm.test")]},
    # two equal hosts, then a backup
    "equal.example": {"MX": [(10, "a.farm.test"), (10, "b.farm.test"), (20, "c.farm.test")]},
    "lmtp.example": {"MX": [(10, "a.farm.test")]},
    "one.example": {"MX": [(10, "a.farm.test")]},
    **{f"{name}.farm.test": {"A": [address]} for name, address in ADDRESSES.items()},
}


@pytest.fixture
def farm_dns() -> Iterator[TestDnsServer]:
    with TestDnsServer(dict(FARM_ZONES)) as server:
        yield server


@pytest.fixture
async def farm_bench(
    farm_dns: TestDnsServer,
) -> AsyncIterator[Callable[..., Awaitable[Bench]]]:
    """``await farm_bench(port, path={...}, queue={...})``: a started bench delivering
    to port ``port`` of the farm's addresses, one connection at a time."""
    benches: list[Bench] = []
    async with RecordingSink() as sink:

        async def make(
            port: int, path: dict[str, Any] | None = None, queue: dict[str, Any] | None = None
        ) -> Bench:
            policy = ShapingPolicy(
                sink_port=port,
                path={"connection_limit": 1, "enable_tls": "Disabled", **(path or {})},
                queue={"retry_interval": "1h", **(queue or {})},
            )
            bench = await Bench(policy, farm_dns, sink).start()
            benches.append(bench)
            return bench

        yield make
        for bench in benches:
            await bench.stop()
