"""LocalThrottleStore: KumoMTA's in-memory GCRA and counted leases, on a fake clock."""

from __future__ import annotations

import math

import pytest

from kumocore.throttle import (
    LeaseLostError,
    LocalThrottleStore,
    ThrottleSpec,
    ThrottleStore,
    rate_key,
)
from kumocore.throttle.local import _PRUNE_MIN

NS = 1_000_000_000


class FakeClock:
    """Monotonic nanoseconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000 * NS

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * NS)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> LocalThrottleStore:
    return LocalThrottleStore(clock=clock)


def admitted(store: LocalThrottleStore, spec: ThrottleSpec, calls: int, key: str = "k") -> int:
    return sum(not store.throttle_now(key, spec).throttled for _ in range(calls))


def test_local_store_satisfies_the_store_protocol(store: LocalThrottleStore) -> None:
    assert isinstance(store, ThrottleStore)
    assert store.name == "local"


async def test_default_burst_admits_the_whole_limit_at_once_then_refuses(
    store: LocalThrottleStore,
) -> None:
    spec = ThrottleSpec.parse("10/s")
    results = [await store.throttle("k", spec) for _ in range(11)]
    assert [r.throttled for r in results] == [False] * 10 + [True]
    assert [r.remaining for r in results[:10]] == list(range(9, -1, -1))
    assert results[-1].remaining == 0
    assert results[-1].retry_after == pytest.approx(0.1)
    assert results[-1].reset_after == pytest.approx(1.0)


def test_max_burst_is_clamped_and_admits_burst_plus_one_like_kumomta(
    store: LocalThrottleStore,
) -> None:
    # KumoMTA local semantics: min(max_burst, limit - 1) + 1 are admitted in an instant.
    assert admitted(store, ThrottleSpec.parse("50/day,max_burst=1"), 10, key="a") == 2
    assert admitted(store, ThrottleSpec.parse("5/m,max_burst=100"), 10, key="b") == 5
    assert admitted(store, ThrottleSpec.parse("5/m,max_burst=0"), 10, key="c") == 1


def test_after_the_burst_the_rate_is_one_per_interval(
    store: LocalThrottleStore, clock: FakeClock
) -> None:
    spec = ThrottleSpec.parse("10/s")
    assert admitted(store, spec, 20) == 10
    total = 0
    for _ in range(50):  # 5 seconds in 100 ms steps: exactly one more each step
        clock.advance(0.1)
        total += admitted(store, spec, 5)
    assert total == 50


def test_retry_after_is_exactly_when_the_next_call_succeeds(
    store: LocalThrottleStore, clock: FakeClock
) -> None:
    spec = ThrottleSpec.parse("60/m,max_burst=2")  # 3 at once, then one per second
    assert admitted(store, spec, 3) == 3
    clock.advance(0.25)
    refused = store.throttle_now("k", spec)
    assert refused.throttled
    assert refused.retry_after == pytest.approx(0.75)
    clock.advance(0.749)
    assert store.throttle_now("k", spec).throttled
    clock.advance(0.001)
    assert not store.throttle_now("k", spec).throttled


def test_a_refused_call_charges_nothing(store: LocalThrottleStore, clock: FakeClock) -> None:
    spec = ThrottleSpec.parse("2/s")
    assert admitted(store, spec, 2) == 2
    assert admitted(store, spec, 100) == 0
    clock.advance(0.5)
    assert admitted(store, spec, 100) == 1


def test_quantity_charges_several_units_and_too_much_can_never_pass(
    store: LocalThrottleStore,
) -> None:
    spec = ThrottleSpec.parse("10/s")
    first = store.throttle_now("k", spec, 7)
    assert (first.throttled, first.remaining) == (False, 3)
    refused = store.throttle_now("k", spec, 4)
    assert refused.throttled and refused.retry_after == pytest.approx(0.1)
    never = store.throttle_now("other", spec, 11)
    assert never.throttled and math.isinf(never.retry_after)
    with pytest.raises(ValueError, match="negative"):
        store.throttle_now("k", spec, -1)


def test_quantity_zero_reports_without_charging(store: LocalThrottleStore) -> None:
    spec = ThrottleSpec.parse("3/s")
    peek = store.throttle_now("k", spec, 0)
    assert (peek.throttled, peek.remaining) == (False, 3)
    assert admitted(store, spec, 5) == 3


def test_keys_are_separate_buckets_and_rate_key_separates_specs(
    store: LocalThrottleStore,
) -> None:
    two, three = ThrottleSpec.parse("2/s"), ThrottleSpec.parse("3/s")
    assert admitted(store, two, 5, key=rate_key("a", two)) == 2
    assert admitted(store, two, 5, key=rate_key("b", two)) == 2
    # A changed policy rate is a different bucket (the spec is part of the key).
    assert admitted(store, three, 5, key=rate_key("a", three)) == 3
    assert admitted(store, three, 5, key=rate_key("a", two)) == 0


def test_idle_buckets_do_not_bank_more_than_their_burst(
    store: LocalThrottleStore, clock: FakeClock
) -> None:
    spec = ThrottleSpec.parse("10/s")
    clock.advance(3600)
    assert admitted(store, spec, 30) == 10


def test_stale_buckets_are_pruned_without_changing_answers(
    store: LocalThrottleStore, clock: FakeClock
) -> None:
    spec = ThrottleSpec.parse("1/s")
    for i in range(_PRUNE_MIN - 1):
        store.throttle_now(f"k{i}", spec)
    clock.advance(2)  # every one of those buckets is full again: they can be forgotten
    store.throttle_now("live", spec)  # the insert that reaches the threshold sweeps
    assert len(store._tats) == 1
    assert store.throttle_now("live", spec).throttled
    assert not store.throttle_now("k1", spec).throttled


async def test_leases_are_limited_and_release_frees_a_unit(store: LocalThrottleStore) -> None:
    first = await store.acquire_lease("c", 2, 60)
    second = await store.acquire_lease("c", 2, 60)
    assert first is not None and second is not None and first.token != second.token
    assert await store.acquire_lease("c", 2, 60) is None
    assert await store.acquire_lease("other", 2, 60) is not None
    await store.release_lease(second)
    await store.release_lease(second)  # twice is harmless
    assert await store.acquire_lease("c", 2, 60) is not None
    assert store.leases_held("c") == 2


async def test_leases_lapse_at_expiry_so_a_dead_holder_frees_its_unit(
    store: LocalThrottleStore, clock: FakeClock
) -> None:
    lease = await store.acquire_lease("c", 1, 5)
    assert lease is not None and lease.expires == pytest.approx(clock.now / NS + 5)
    clock.advance(4.9)
    assert await store.acquire_lease("c", 1, 5) is None
    clock.advance(0.1)
    assert await store.acquire_lease("c", 1, 5) is not None


async def test_renewal_extends_a_lease_and_a_lapsed_one_is_lost(
    store: LocalThrottleStore, clock: FakeClock
) -> None:
    lease = await store.acquire_lease("c", 1, 5)
    assert lease is not None
    clock.advance(4)
    await store.renew_lease(lease, 10)
    assert lease.expires == pytest.approx(clock.now / NS + 10)
    clock.advance(9)
    assert await store.acquire_lease("c", 1, 5) is None
    clock.advance(1)
    with pytest.raises(LeaseLostError, match="no longer held"):
        await store.renew_lease(lease, 10)
    assert await store.acquire_lease("c", 1, 5) is not None


async def test_close_forgets_everything(store: LocalThrottleStore) -> None:
    spec = ThrottleSpec.parse("1/h")
    assert admitted(store, spec, 2) == 1
    await store.acquire_lease("c", 1, 60)
    await store.close()
    await store.close()
    assert admitted(store, spec, 2) == 1
    assert await store.acquire_lease("c", 1, 60) is not None
