"""The delivery trace's ``id`` (``trace-smtp-client``): as in KumoMTA it is the
dispatcher's ``session_id`` and spans every connection of the session, not one
connection; ``BeginSession`` is sent once per session. The MX set of ``plan.example`` is
a (refuses with 554), b, c: host b drops the first transaction, so the session's
connections are a, b, then c."""

from __future__ import annotations

import uuid
from typing import Any

from kumocore.trace.bus import CLIENT_TRACE, Subscriber
from tests.delivery.conftest import ADDRESSES
from tests.support.mx_farm import Host, MxFarm


def _kind(event: Any) -> str:
    payload = event.payload()
    return payload if isinstance(payload, str) else next(iter(payload))


async def test_one_session_over_several_connections_is_one_trace_id(farm_bench: Any) -> None:
    farm = MxFarm({
        "a": Host(ADDRESSES["a"], banner="554 5.3.2 not now"),
        "b": Host(ADDRESSES["b"], script=["drop"]),
        "c": Host(ADDRESSES["c"]),
    })  # fmt: skip
    subscriber = CLIENT_TRACE.subscribe(Subscriber(lambda meta: True))
    try:
        async with farm:
            bench = await farm_bench(farm.port)
            await bench.inject("one@plan.example")
            await bench.inject("two@plan.example")
            await bench.wait_for_records("Delivery", 1)
            await bench.wait_until(lambda: any(e.kind == "Closed" and e.conn_meta
                                               and e.conn_meta.get("mx_address") == ADDRESSES["c"]
                                               for e in subscriber.queue))  # fmt: skip
    finally:
        CLIENT_TRACE.unsubscribe(subscriber)
    events = list(subscriber.queue)
    assert farm.order() == ["a", "b", "c"]
    kinds = [_kind(e) for e in events]
    assert kinds.count("BeginSession") == 1 and kinds[0] == "BeginSession"
    # KumoMTA's ResolvedMxAddresses: the plan last to try first
    plan = events[0].conn_meta["mx_plan"]["Addresses"]
    assert [entry["addr"] for entry in plan] == [ADDRESSES[h] for h in ("c", "b", "a")]
    connected = [e.conn_meta["mx_address"] for e in events if e.kind == "Connected"]
    assert connected == [ADDRESSES["a"], ADDRESSES["b"], ADDRESSES["c"]]
    ids = {e.conn_meta["id"] for e in events if e.conn_meta is not None}
    assert len(ids) == 1
    assert uuid.UUID(ids.pop()).version == 4


async def test_two_sessions_are_two_trace_ids(farm_bench: Any) -> None:
    subscriber = CLIENT_TRACE.subscribe(Subscriber(lambda meta: True))
    try:
        async with MxFarm({"a": Host(ADDRESSES["a"])}) as farm:
            bench = await farm_bench(farm.port)  # idle_timeout 0.2s: a session per message
            await bench.inject("one@one.example")
            await bench.wait_for_records("Delivery", 1)
            await bench.wait_until(lambda: any(e.kind == "Closed" for e in subscriber.queue))
            await bench.inject("two@one.example")
            await bench.wait_for_records("Delivery", 2)
            await bench.wait_until(lambda: sum(e.kind == "Closed" for e in subscriber.queue) == 2)
    finally:
        CLIENT_TRACE.unsubscribe(subscriber)
    begins = [e.conn_meta["id"] for e in subscriber.queue if e.kind == "BeginSession"]
    assert len(begins) == 2 and begins[0] != begins[1]


async def test_the_mx_plan_carries_the_port_an_mx_list_entry_gives(farm_bench: Any) -> None:
    subscriber = CLIENT_TRACE.subscribe(Subscriber(lambda meta: True))
    try:
        async with MxFarm({"a": Host(ADDRESSES["a"])}) as farm:
            entry = {"name": "mx.listed.test", "addr": f"{ADDRESSES['a']}:{farm.port}"}
            bench = await farm_bench(1, queue={"protocol": {"smtp": {"mx_list": [entry]}}})
            await bench.inject("one@listed.invalid", queue="listed.invalid")
            await bench.wait_for_records("Delivery", 1)
    finally:
        CLIENT_TRACE.unsubscribe(subscriber)
    (begin,) = [e.conn_meta for e in subscriber.queue if e.kind == "BeginSession"]
    assert begin is not None
    assert begin["mx_plan"] == {"Addresses": [entry]}
