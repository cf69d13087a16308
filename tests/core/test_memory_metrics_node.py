"""KumoMTA's memory and spool-health metrics on a running node's ``/metrics``, and the
ready queue's connection cap while memory is over the soft limit (KumoMTA opens at
most two connections per ready queue while it sheds load)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

import kumocore
from kumocore.config import EgressPathConfig
from kumocore.node.memory import MEMORY
from kumocore.testing.node import SINK_HOST, Node
from kumocore.testing.plugin import MakeNode

READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
HUGE = 1 << 50


@pytest.fixture(autouse=True)
async def fresh_memory_state() -> AsyncIterator[None]:
    MEMORY.reset()
    yield
    MEMORY.reset()


async def scrape(node: Node) -> str:
    status, text = await node.admin("GET", "/metrics")
    assert status == 200
    assert isinstance(text, str)
    return text


def value(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert match is not None, f"{name}{labels} not in /metrics"
    return float(match[1])


async def test_memory_gauges_and_counters_use_kumomtas_names_types_and_values(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    text = await scrape(node)
    for name in ("memory_usage", "memory_limit", "memory_low_thresh"):
        assert f"# TYPE {name} gauge\n" in text
    assert "# HELP memory_limit soft memory limit measured in bytes\n" in text
    assert "# HELP memory_low_thresh low memory threshold measured in bytes\n" in text
    assert "# TYPE memory_over_limit_count counter\n" in text
    assert "# TYPE memory_low_count counter\n" in text
    assert value(text, "memory_usage") == MEMORY.usage and MEMORY.usage > 0
    assert value(text, "memory_limit") == MEMORY.limits.soft
    # by default the low threshold is 80 % of the soft limit
    assert value(text, "memory_low_thresh") == int(value(text, "memory_limit")) * 8 // 10
    over_before = value(text, "memory_over_limit_count")
    low_before = value(text, "memory_low_count")

    kumocore.set_memory_low_thresh(12345)
    kumocore.set_memory_soft_limit(1)  # any process uses more: over the limit
    text = await scrape(node)
    assert value(text, "memory_limit") == 1
    assert value(text, "memory_low_thresh") == 12345
    assert value(text, "memory_over_limit_count") == over_before + 1
    assert value(text, "memory_low_count") == low_before + 1
    kumocore.set_memory_soft_limit(1)  # still over: not a new transition
    assert value(await scrape(node), "memory_over_limit_count") == over_before + 1
    kumocore.set_memory_soft_limit(HUGE)
    kumocore.set_memory_low_thresh(HUGE)
    kumocore.set_memory_soft_limit(1)
    assert value(await scrape(node), "memory_over_limit_count") == over_before + 2


async def test_the_spool_load_shed_gauge_is_one_per_spool_while_unhealthy(
    make_node: MakeNode,
) -> None:
    node = await make_node(spool="rocksdb")
    spools = node.tmp_path / "spool"
    labels = [f'{{path="{spools / name}"}}' for name in ("data", "meta")]
    text = await scrape(node)
    assert "# TYPE rocks_spool_load_shed_active gauge\n" in text
    assert [value(text, "rocks_spool_load_shed_active", x) for x in labels] == [0, 0]
    health = node.server.spool_health
    health.interval = 60.0  # no probe clears it during the test
    health.write_failed()
    text = await scrape(node)
    assert [value(text, "rocks_spool_load_shed_active", x) for x in labels] == [1, 1]


async def test_over_the_soft_limit_a_ready_queue_opens_at_most_two_connections(
    make_node: MakeNode,
) -> None:
    started: list[Node] = []

    class TenConnections:
        @kumocore.hookimpl
        def kumo_get_egress_path_config(self) -> EgressPathConfig:
            sink = started[0].sink
            assert sink is not None
            return EgressPathConfig.from_options(
                {"smtp_port": sink.port, "prohibited_hosts": [], "connection_limit": 10}
            )

    started.append(await make_node(spool="rocksdb", plugins=[TenConnections()]))
    node = started[0]
    status, _ = await node.admin(
        "POST", "/api/admin/suspend-ready-q/v1", {"name": READY_Q, "reason": "t", "duration": "1h"}
    )
    assert status == 200
    recipients = [f"r{n}@dest.test" for n in range(8)]
    await node.send(recipients=recipients)
    services = node.runtime.services
    assert services is not None
    while sum(len(p) for p in services.queues.paths.values()) < len(recipients):
        await asyncio.sleep(0.02)
    kumocore.set_memory_soft_limit(1)
    _, listed = await node.admin("GET", "/api/admin/suspend-ready-q/v1")
    for entry in listed:
        await node.admin("DELETE", "/api/admin/suspend-ready-q/v1", {"id": entry["id"]})
    [path] = services.queues.paths.values()
    most = 0
    assert node.sink is not None
    while len(node.sink.messages) < len(recipients):
        most = max(most, path.connections)
        await asyncio.sleep(0.001)
    assert 1 <= most <= 2
    assert len({m.connection for m in node.sink.messages}) <= 2


async def test_the_default_low_threshold_is_exactly_eight_tenths_of_the_soft_limit(
    make_node: MakeNode,
) -> None:
    policy = """
local kumo = require 'kumo'
kumo.on('pre_init', function() kumo.set_memory_soft_limit(8886495696081193) end)
kumo.on('init', function()
  -- KumoMTA computes limit * 8 / 10 in integers; a float 0.8 is one byte off here
  assert(kumo.get_memory_low_thresh() == 7109196556864954, kumo.get_memory_low_thresh())
end)
"""
    await make_node(policy)
    assert kumocore.get_memory_low_thresh() == 8886495696081193 * 8 // 10
