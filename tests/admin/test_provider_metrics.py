"""KumoMTA's per-provider metrics on ``/metrics``: delivery outcomes by provider (and by
provider, source and pool) and connections by provider. Real node, Lua policy, a
recording sink that fails the recipients asking for it."""

from __future__ import annotations

import dataclasses
from typing import Any

from kumocore.node.runtime import Runtime
from kumocore.testing.node import start_node
from kumocore.testing.smtp_sink import RecordingSink
from tests.admin.conftest import Enqueue, make_ready
from tests.support.metric_samples import samples, series
from tests.support.provider_node import policy_for


async def test_outcomes_are_counted_by_provider_or_site_and_by_source_and_pool() -> None:
    sink = await RecordingSink().start()
    zones = {"small.test": {"MX": [(10, "mx.small.test")]},  # a site of its own
             "mx.small.test": {"A": ["127.0.0.1"]}}
    node = await start_node(policy_for(sink), sink=sink,
                            zones=zones)
    try:
        for recipient in ("a@big.test", "b@big.test", "tempfail@big.test",
                          "permfail@big.test", "c@small.test"):
            assert await node.send("s@src.test", recipient) == {}
        await node.wait_for("Delivery", count=3, timeout=20)
        await node.wait_for("TransientFailure", timeout=20)
        await node.wait_for("Bounce", timeout=20)
        status, text = await node.admin("GET", "/metrics")
    finally:
        await node.stop()
        await sink.stop()
    assert status == 200
    values = samples(text)
    small_site = "mx.small.test"  # a path without provider_name: its site name
    assert series(values, "total_messages_delivered_by_provider") == {
        ("BigMail",): 2, (small_site,): 1}
    assert series(values, "total_messages_transfail_by_provider") == {("BigMail",): 1}
    assert series(values, "total_messages_fail_by_provider") == {("BigMail",): 1}
    # labels sorted by name: pool, provider, source
    assert series(values, "total_messages_delivered_by_provider_and_source") == {
        ("pool-1", "BigMail", "ip-1"): 2, ("pool-1", small_site, "ip-1"): 1}
    assert series(values, "total_messages_fail_by_provider_and_source") == {
        ("pool-1", "BigMail", "ip-1"): 1}
    assert ("connection_count_by_provider", ()) not in values  # a family, no bare sample


async def test_connections_are_summed_by_provider_or_site(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    manager = runtime.services.queues
    big_1 = make_ready(manager, [enqueue("a@example.com")], site="mx1.big", source="s1")
    big_2 = make_ready(manager, [enqueue("b@example.com")], site="mx2.big", source="s2")
    small = make_ready(manager, [enqueue("c@example.net")], site="mx.small", source="s1")
    for path, count in ((big_1, 2), (big_2, 3), (small, 1)):
        path.connections = count
    for path in (big_1, big_2):
        path.config = dataclasses.replace(path.config, provider_name="BigMail")
    values = samples(await (await client.get("/metrics")).text())
    assert series(values, "connection_count_by_provider") == {("BigMail",): 5, ("mx.small",): 1}
