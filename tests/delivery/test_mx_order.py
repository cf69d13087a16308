"""The order in which a session tries MX hosts, as KumoMTA's: lowest preference first,
the addresses of one preference in random order, drawn afresh for each session; an
``mx_list`` as written."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.delivery.conftest import ADDRESSES
from tests.support.mx_farm import Host, MxFarm

#: Sessions to watch: three connections each (a and b refuse, c takes the message).
SESSIONS = 70
REFUSE = "554 5.3.2 not now"


async def test_equal_preference_hosts_are_tried_in_both_orders_and_the_backup_last(
    farm_bench: Any,
) -> None:
    # equal.example: a and b at 10, c at 20. With a and b refusing, every session's
    # whole plan shows in its connections. A fixed order would give the same pair
    # 70 times; a fair shuffle does so with probability 2 ** -69.
    farm = MxFarm(
        {
            "a": Host(ADDRESSES["a"], banner=REFUSE),
            "b": Host(ADDRESSES["b"], banner=REFUSE),
            "c": Host(ADDRESSES["c"]),
        }
    )
    async with farm:
        bench = await farm_bench(farm.port, path={"max_deliveries_per_connection": 1})
        for n in range(SESSIONS):
            await bench.inject(f"r{n}@equal.example")
        await bench.wait_for_records("Delivery", SESSIONS, timeout=60)
        order = farm.order()
        assert len(order) == 3 * SESSIONS
        plans = [tuple(order[i : i + 3]) for i in range(0, len(order), 3)]
        assert {plan[2] for plan in plans} == {"c"}  # the backup never before the others
        counts = Counter(plan[:2] for plan in plans)
        assert set(counts) == {("a", "b"), ("b", "a")}, counts


async def test_a_less_preferred_host_is_never_tried_first(farm_bench: Any) -> None:
    # All three accept: over many sessions only the two preferred hosts are used, both.
    farm = MxFarm({name: Host(address) for name, address in ADDRESSES.items()})
    async with farm:
        bench = await farm_bench(farm.port, path={"max_deliveries_per_connection": 1})
        for n in range(SESSIONS):
            await bench.inject(f"r{n}@equal.example")
        await bench.wait_for_records("Delivery", SESSIONS, timeout=60)
        counts = Counter(farm.order())
        assert set(counts) == {"a", "b"}, counts
        assert sum(counts.values()) == SESSIONS


async def test_an_mx_list_is_tried_in_the_order_written(farm_bench: Any) -> None:
    farm = MxFarm(
        {
            "a": Host(ADDRESSES["a"], banner=REFUSE),
            "b": Host(ADDRESSES["b"], banner=REFUSE),
            "c": Host(ADDRESSES["c"]),
        }
    )
    protocol = {"smtp": {"mx_list": ["b.farm.test", "a.farm.test", "c.farm.test"]}}
    async with farm:
        bench = await farm_bench(
            farm.port, path={"max_deliveries_per_connection": 1}, queue={"protocol": protocol}
        )
        for n in range(10):
            await bench.inject(f"r{n}@list.example")
        await bench.wait_for_records("Delivery", 10, timeout=30)
        assert farm.order() == ["b", "a", "c"] * 10
