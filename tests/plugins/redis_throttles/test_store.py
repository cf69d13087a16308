"""RedisThrottleStore against a real redis-server: GCRA, key naming, leases."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from kumocore_redis_throttles import RedisOptions, RedisThrottleStore
from kumocore_redis_throttles.scripts import cell_result

from bench.common.redis_server import RedisServer
from kumocore.throttle import (
    LeaseLostError,
    LocalThrottleStore,
    ThrottleSpec,
    ThrottleStore,
    rate_key,
)

# Slow rates keep results independent of how long each round trip takes on a busy host.
SEQUENCES = [
    ("10/m", [1] * 12),
    ("50/day,max_burst=1", [1] * 4),
    ("5/m,max_burst=0", [1] * 3),
    ("6/m,max_burst=100", [1] * 8),
    ("10/m", [7, 4, 3, 1]),
    ("10/h", [11, 0, 10, 0]),
]


@pytest.mark.parametrize(("text", "quantities"), SEQUENCES)
async def test_redis_gcra_decides_exactly_like_the_local_store(
    store: RedisThrottleStore, text: str, quantities: list[int]
) -> None:
    spec, local = ThrottleSpec.parse(text), LocalThrottleStore()
    for quantity in quantities:
        shared = await store.throttle("seq", spec, quantity)
        alone = local.throttle_now("seq", spec, quantity)
        assert (shared.throttled, shared.remaining) == (alone.throttled, alone.remaining)
        assert shared.reset_after == pytest.approx(alone.reset_after, abs=0.5)
        if math.isinf(alone.retry_after):
            assert math.isinf(shared.retry_after)
        else:
            assert shared.retry_after == pytest.approx(alone.retry_after, abs=0.5)


async def test_redis_gcra_uses_sub_second_time_so_fast_rates_retry_promptly(
    store: RedisThrottleStore,
) -> None:
    spec = ThrottleSpec.parse("4/s")  # one every 250 ms after a burst of 4
    for _ in range(20):
        refused = await store.throttle("fast", spec)
        if refused.throttled:
            break
    assert refused.throttled
    # Whole-second TIME (as in KumoMTA's script) would say "retry in 1 s" here.
    assert 0 < refused.retry_after <= 0.25 + 1e-6
    await asyncio.sleep(refused.retry_after + 0.05)
    assert not (await store.throttle("fast", spec)).throttled


async def test_throttle_state_lives_under_kumomtas_key_and_expires(
    store: RedisThrottleStore, raw: Any
) -> None:
    spec = ThrottleSpec.parse("5/m")
    key = rate_key("kumomta.max_message_rate.src->site@smtp_client", spec)
    await store.throttle(key, spec)
    assert await raw.keys() == ["kumomta.max_message_rate.src->site@smtp_client:5:5:60"]
    assert 0 < await raw.pttl(key) <= 12_000  # one interval charged: 12 s until full again


async def test_local_specs_never_touch_redis(store: RedisThrottleStore, raw: Any) -> None:
    spec = ThrottleSpec.parse("local:1/h")
    assert not (await store.throttle("mine", spec)).throttled
    assert (await store.throttle("mine", spec)).throttled
    assert await raw.dbsize() == 0


async def test_two_stores_on_one_redis_share_one_bucket(
    store: RedisThrottleStore, redis_server: RedisServer
) -> None:
    other = await RedisThrottleStore.connect(RedisOptions.from_table({"node": redis_server.url}))
    try:
        spec = ThrottleSpec.parse("5/m")
        mine = [not (await store.throttle("fleet", spec)).throttled for _ in range(3)]
        theirs = [not (await other.throttle("fleet", spec)).throttled for _ in range(3)]
        assert mine == [True, True, True] and theirs == [True, True, False]
        assert (await store.throttle("fleet", spec)).throttled
    finally:
        await other.close()


async def test_scripts_are_reloaded_after_redis_forgets_them(
    store: RedisThrottleStore, raw: Any
) -> None:
    spec = ThrottleSpec.parse("2/m")
    await store.throttle("k", spec)
    await raw.script_flush()
    assert not (await store.throttle("k", spec)).throttled  # NOSCRIPT → load → retry
    assert (await store.throttle("k", spec)).throttled
    assert await store.acquire_lease("c", 1, 5) is not None


async def test_redis_store_satisfies_the_protocol_and_detects_no_redis_cell(
    store: RedisThrottleStore,
) -> None:
    assert isinstance(store, ThrottleStore)
    assert store.name == "redis"
    assert store.has_redis_cell is False


class CellServer:
    """Stands in for a server with the redis-cell module: records CL.THROTTLE calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def execute_command(self, *args: Any) -> list[int]:
        self.calls.append(args)
        return [1, 3, 0, 4, 9]


async def test_with_redis_cell_the_store_sends_cl_throttle_with_local_burst_semantics() -> None:
    server = CellServer()
    store = RedisThrottleStore(server, label="cell", has_redis_cell=True)
    result = await store.throttle("k:50:1:86400", ThrottleSpec.parse("50/day,max_burst=1"), 2)
    # max_burst 1 → capacity 2 → redis-cell max_burst 1 (it admits max_burst + 1).
    assert server.calls == [("CL.THROTTLE", "k:50:1:86400", 1, 50, 86400, 2)]
    assert (result.throttled, result.retry_after, result.reset_after) == (True, 4.0, 9.0)
    await store.throttle("k2", ThrottleSpec.parse("10/m"))
    assert server.calls[-1] == ("CL.THROTTLE", "k2", 9, 10, 60, 1)


def test_redis_cell_replies_are_decoded_as_throttle_results() -> None:
    admitted = cell_result([0, 11, 9, -1, 1])
    assert (admitted.throttled, admitted.remaining, admitted.retry_after) == (False, 9, 0.0)
    refused = cell_result([1, 11, 0, 2, 60])
    assert (refused.throttled, refused.retry_after, refused.reset_after) == (True, 2.0, 60.0)
    assert math.isinf(cell_result([1, 11, 0, -1, 60]).retry_after)


async def test_leases_are_shared_by_all_stores_and_limited(
    store: RedisThrottleStore, redis_server: RedisServer, raw: Any
) -> None:
    other = await RedisThrottleStore.connect(RedisOptions.from_table({"node": redis_server.url}))
    try:
        key = "kumomta.connection_limit.src->site@smtp_client"
        first = await store.acquire_lease(key, 2, 30)
        second = await other.acquire_lease(key, 2, 30)
        assert first is not None and second is not None
        assert (first.origin, second.origin) == ("redis", "redis")
        assert await store.acquire_lease(key, 2, 30) is None
        assert await other.acquire_lease(key, 2, 30) is None
        assert await raw.zcard(key) == 2
        await other.release_lease(second)
        await other.release_lease(second)  # twice is harmless
        assert await store.acquire_lease(key, 2, 30) is not None
        assert 0 < await raw.pttl(key) <= 30_000  # the set itself goes when its leases do
    finally:
        await other.close()


async def test_a_lease_nobody_renews_lapses_like_a_crashed_nodes(
    store: RedisThrottleStore,
) -> None:
    assert await store.acquire_lease("c", 1, 0.3) is not None
    assert await store.acquire_lease("c", 1, 0.3) is None
    await asyncio.sleep(0.4)
    assert await store.acquire_lease("c", 1, 0.3) is not None


async def test_renewal_keeps_a_lease_and_a_lapsed_lease_cannot_be_renewed(
    store: RedisThrottleStore,
) -> None:
    lease = await store.acquire_lease("c", 1, 0.3)
    assert lease is not None
    before = lease.expires
    await store.renew_lease(lease, 5)
    assert lease.expires > before + 4
    await asyncio.sleep(0.4)
    assert await store.acquire_lease("c", 1, 0.3) is None  # still held thanks to renewal
    short = await store.acquire_lease("d", 1, 0.1)
    assert short is not None
    await asyncio.sleep(0.2)
    with pytest.raises(LeaseLostError):
        await store.renew_lease(short, 5)
    assert await store.acquire_lease("d", 1, 5) is not None


async def test_close_is_idempotent(store: RedisThrottleStore) -> None:
    await store.close()
    await store.close()
