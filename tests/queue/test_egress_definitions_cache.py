"""Egress pools and sources are kept for their ``ttl``, as KumoMTA keeps them: the policy's
``get_egress_pool`` and ``get_egress_source`` are asked once per name and ``ttl``, not once
per message; ``ttl = 0`` asks every time; nothing found is never kept."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore import hookimpl
from kumocore.config import EgressPool
from kumocore.config.egress import EgressSource
from kumocore.queue.egress_cache import DefinitionCache
from tests.queue.harness import Bench, ShapingPolicy


@dataclass
class CountingPolicy(ShapingPolicy):
    """Defines pool ``counted`` with source ``counted-1`` (127.0.10.1), and counts asks."""

    ttl: str = "60s"
    asked: collections.Counter[str] = field(default_factory=collections.Counter)

    @hookimpl
    def kumo_get_egress_pool(self, pool_name: str) -> EgressPool | None:
        self.asked["pool"] += 1
        if pool_name != "counted":
            return None
        return EgressPool.from_options(
            {"name": pool_name, "entries": [{"name": "counted-1"}], "ttl": self.ttl})

    @hookimpl
    def kumo_get_egress_source(self, source_name: str) -> EgressSource | None:
        self.asked["source"] += 1
        return EgressSource.from_options(
            {"name": source_name, "source_address": "127.0.10.1", "ttl": self.ttl})


@pytest.fixture
async def start(dns: TestDnsServer, sink: RecordingSink) -> AsyncIterator[Any]:
    benches: list[Bench] = []

    async def make(policy: CountingPolicy) -> Bench:
        bench = await Bench(policy, dns, sink).start()
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        await bench.stop()


async def test_pool_and_source_are_asked_once_for_many_messages_within_their_ttl(
    start: Any, sink: RecordingSink
) -> None:
    policy = CountingPolicy(sink_port=sink.port, queue={"egress_pool": "counted"})
    bench = await start(policy)
    for n in range(6):
        await bench.inject(f"r{n}@example.com")
    messages = await sink.wait_for(6)
    assert {m.source_ip for m in messages} == {"127.0.10.1"}
    assert policy.asked == {"pool": 1, "source": 1}


async def test_zero_ttl_asks_the_policy_for_every_message(
    start: Any, sink: RecordingSink
) -> None:
    policy = CountingPolicy(sink_port=sink.port, queue={"egress_pool": "counted"}, ttl="0s")
    bench = await start(policy)
    for n in range(4):
        await bench.inject(f"r{n}@example.com")
    await sink.wait_for(4)
    assert policy.asked == {"pool": 4, "source": 4}


async def test_undefined_pool_is_asked_again_for_the_next_message(
    start: Any, sink: RecordingSink
) -> None:
    policy = CountingPolicy(sink_port=sink.port, queue={"egress_pool": "missing"})
    bench = await start(policy)
    await bench.inject("a@example.com")
    await bench.inject("b@example.com")
    await bench.wait_until(lambda: policy.asked["pool"] >= 2)
    assert sink.messages == []


@dataclass
class _Definition:
    name: str
    ttl: float


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_definition_is_asked_again_once_its_own_ttl_has_passed() -> None:
    clock, asked = _Clock(), collections.Counter[str]()

    async def lookup(name: str) -> _Definition:
        asked[name] += 1
        return _Definition(name, ttl=30.0 if name == "long" else 5.0)

    cache = DefinitionCache(lookup, clock=clock)
    for _ in range(3):
        await cache.get("long")
        await cache.get("short")
    clock.now += 10
    await cache.get("long")
    await cache.get("short")
    assert asked == {"long": 1, "short": 2}


async def test_cache_keeps_at_most_its_bound_of_names_dropping_the_oldest() -> None:
    asked = collections.Counter[str]()

    async def lookup(name: str) -> _Definition:
        asked[name] += 1
        return _Definition(name, ttl=60.0)

    cache = DefinitionCache(lookup, max_names=2)
    for name in ("a", "b", "c", "c", "b", "a"):
        await cache.get(name)
    # "a" was dropped when "c" came, so it is asked again; "b" and "c" were kept.
    assert asked == {"a": 2, "b": 1, "c": 1}


async def test_handler_error_is_not_kept() -> None:
    calls = 0

    async def lookup(name: str) -> _Definition:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("policy failed")
        return _Definition(name, ttl=60.0)

    cache = DefinitionCache(lookup)
    with pytest.raises(RuntimeError):
        await cache.get("x")
    assert (await cache.get("x")) is not None
    await cache.get("x")
    assert calls == 2
