"""KumoMTA's ``queued_count_by_provider``, ``queued_count_by_provider_and_pool`` and
``connection_count_by_provider_and_pool`` on ``/metrics``: the messages of the scheduled
and ready queues, and the open connections, by provider (a path's or queue's
``provider_name``, else its site) and pool; and the 500-series cap of every provider
family under a flood of destinations."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from kumocore.admin.metrics import MAX_SERIES, OTHER
from kumocore.node.runtime import Runtime
from kumocore.testing.node import start_node
from kumocore.testing.smtp_sink import RecordingSink
from tests.admin.conftest import Enqueue, make_ready
from tests.support.admin_cli import run_cli
from tests.support.metric_samples import samples, scrape, series
from tests.support.provider_node import policy_for, settled_node


async def test_waiting_messages_are_counted_by_provider_or_site_and_pool_on_a_real_node(
) -> None:
    sink = await RecordingSink().start()
    zones = {"later.test": {"MX": [(10, "mx.later.test")]},
             "mx.later.test": {"A": ["127.0.0.1"]},
             "big.test": {"MX": [(10, "mx.big.test")]},
             "mx.big.test": {"A": ["127.0.0.1"]}}  # fmt: skip
    node = await start_node(policy_for(sink), sink=sink, zones=zones)
    try:
        # Routed, then back to wait an hour after the sink's 451. As in KumoMTA, a
        # scheduled queue counts under its own config's provider_name, else its site:
        # the path's provider_name (BigMail) labels only the ready queue's messages.
        assert await node.send("s@src.test", "tempfail@big.test") == {}
        assert await node.send("s@src.test", "tempfail@named.test") == {}
        # Scheduled for later at reception, never routed: its site is looked up.
        assert await node.send("s@src.test", "x@later.test") == {}
        assert await node.send("s@src.test", "ok@small.test") == {}
        await node.wait_for("TransientFailure", count=2, timeout=20)
        await node.wait_for("Delivery", timeout=20)
        values: dict[Any, float] = {}
        for _ in range(100):  # the background lookup runs after the reception
            values = await scrape(node)
            if series(values, "queued_count_by_provider").get(("mx.later.test",)):
                break
            await asyncio.sleep(0.05)
        status, view = await node.admin(
            "GET", "/api/admin/inspect-ready-q/v1?queue_name=ip-1->mx.big.test@smtp_client")
        assert (status, view["egress_pool"]) == (200, "pool-1")  # the opener's pool
    finally:
        await node.stop()
        await sink.stop()
    assert series(values, "queued_count_by_provider") == {
        ("mx.big.test",): 1, ("NamedQueue",): 1, ("mx.later.test",): 1}
    # labels sorted by name: pool, provider
    assert series(values, "queued_count_by_provider_and_pool") == {
        ("pool-1", "mx.big.test"): 1, ("pool-1", "NamedQueue"): 1,
        ("pool-1", "mx.later.test"): 1}
    assert values[("scheduled_count_total", ())] == 3  # the gauges sum to it


async def test_ready_messages_and_connections_count_under_the_pool_that_opened_the_path(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    manager = runtime.services.queues
    big = make_ready(manager, [enqueue("a@example.com"), enqueue("b@example.com")],
                     site="mx1.big", source="s1")  # fmt: skip
    small = make_ready(manager, [enqueue("c@example.net")], site="mx.small", source="s1")
    idle = make_ready(manager, [], site="mx.idle", source="s1")
    big.config = dataclasses.replace(big.config, provider_name="BigMail")
    big.pool, small.pool = "pool-a", None  # None: no routed message opened it
    big.connections, small.connections, idle.connections = 2, 1, 0
    values = samples(await (await client.get("/metrics")).text())
    assert series(values, "queued_count_by_provider") == {("BigMail",): 2, ("mx.small",): 1}
    assert series(values, "queued_count_by_provider_and_pool") == {
        ("pool-a", "BigMail"): 2, ("unspecified", "mx.small"): 1}
    assert series(values, "connection_count_by_provider_and_pool") == {
        ("pool-a", "BigMail"): 2, ("unspecified", "mx.small"): 1}


async def test_every_provider_family_keeps_500_series_under_a_flood_of_destinations(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    manager = runtime.services.queues
    counts = manager.outcomes.provider_counts
    sites = 700
    for n in range(sites):
        path = make_ready(manager, [enqueue(f"u{n}@d{n}.example")], site=f"mx.d{n}.example")
        path.pool, path.connections = "pool", 1
        for kind in ("Delivery", "TransientFailure", "Bounce"):
            counts.count(kind, path, "pool")
    started = time.perf_counter()
    values = samples(await (await client.get("/metrics")).text())
    scrape = time.perf_counter() - started
    families = [f"total_messages_{o}_by_provider{s}" for o in ("delivered", "transfail", "fail")
                for s in ("", "_and_source")]  # fmt: skip
    families += ["connection_count_by_provider", "connection_count_by_provider_and_pool",
                 "queued_count_by_provider", "queued_count_by_provider_and_pool"]  # fmt: skip
    for name in families:
        family = series(values, name)
        assert len(family) == MAX_SERIES, name
        other = [value for labels, value in family.items() if labels[-1] == OTHER]
        # the rest of the 700 sites, each 1, summed in one series
        assert other == [sites - MAX_SERIES + 1], name
        assert sum(family.values()) == sites, name
    assert scrape < 1.0  # ten capped families over 700 paths (measured 0.12 s)


async def test_provider_summary_prints_kclis_table_by_provider_pool_and_domains(
    capsys: Any,
) -> None:
    async with settled_node() as node:  # idle connections closed: C is 0
        endpoint = ("--endpoint", node.http_url)
        code, out, err = await run_cli(capsys, "provider-summary", *endpoint)
        assert (code, err) == (0, "")
        # Volume (D+T+F+Q) first, then natural order. The path named BigMail took the
        # attempt; the waiting message counts under its scheduled queue's site.
        assert [line.split() for line in out.splitlines()] == [
            ["PROVIDER", "D", "T", "F", "C", "Q"],
            ["mx.small.test", "2", "0", "0", "0", "0"],
            ["BigMail", "0", "1", "0", "0", "0"],
            ["mx.big.test", "0", "0", "0", "0", "1"],
            ["mx.later.test", "0", "0", "0", "0", "1"],
        ]
        assert out.splitlines()[0] == "PROVIDER      D T F C Q"  # names left, numbers right
        code, out, _ = await run_cli(capsys, "provider-summary", "--by-pool", "--show-domains",
                                     *endpoint)  # fmt: skip
        assert code == 0
        assert [line.split() for line in out.splitlines()] == [
            ["PROVIDER", "POOL", "D", "T", "F", "C", "Q", "DOMAINS"],
            ["mx.small.test", "pool-1", "2", "0", "0", "0", "0"],
            ["BigMail", "pool-1", "0", "1", "0", "0", "0"],
            ["mx.big.test", "pool-1", "0", "0", "0", "0", "1", "big.test"],
            ["mx.later.test", "pool-1", "0", "0", "0", "0", "1", "later.test"],
        ]
        code, out, _ = await run_cli(capsys, "provider-summary", "--limit", "1", *endpoint)
        assert code == 0 and len(out.splitlines()) == 2
        code, _, err = await run_cli(capsys, "provider-summary", "--limit", "-1", *endpoint)
        assert code == 1 and "--limit" in err
