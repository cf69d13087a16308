"""KumoMTA's per-provider metrics on ``/metrics``: delivery outcomes by provider (and by
provider, source and pool) and connections by provider. Real node, Lua policy, a
recording sink that fails the recipients asking for it."""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kumocore.node.runtime import Runtime
from kumocore.testing.node import start_node
from kumocore.testing.smtp_sink import RecordingSink
from tests.admin.conftest import Enqueue, make_ready

POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.define_egress_source { name = 'ip-1' }
  kumo.define_egress_pool { name = 'pool-1', entries = { { name = 'ip-1' } } }
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { egress_pool = 'pool-1', retry_interval = '1h' }
end)

kumo.on('get_egress_path_config', function(domain, source, site)
  local options = { enable_tls = 'Disabled', smtp_port = SINK_PORT, prohibited_hosts = {} }
  if domain == 'big.test' then
    options.provider_name = 'BigMail'
  end
  return kumo.make_egress_path(options)
end)
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    return {
        (sample.name.removesuffix("_total") if family.type == "counter" else sample.name,
         tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _by(values: Samples, name: str) -> dict[tuple[str, ...], float]:
    return {tuple(v for _, v in labels): value for (n, labels), value in values.items()
            if n == name}


async def test_outcomes_are_counted_by_provider_or_site_and_by_source_and_pool() -> None:
    sink = await RecordingSink().start()
    zones = {"small.test": {"MX": [(10, "mx.small.test")]},  # a site of its own
             "mx.small.test": {"A": ["127.0.0.1"]}}
    node = await start_node(POLICY.replace("SINK_PORT", str(sink.port)), sink=sink,
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
    values = _samples(text)
    small_site = "mx.small.test"  # a path without provider_name: its site name
    assert _by(values, "total_messages_delivered_by_provider") == {
        ("BigMail",): 2, (small_site,): 1}
    assert _by(values, "total_messages_transfail_by_provider") == {("BigMail",): 1}
    assert _by(values, "total_messages_fail_by_provider") == {("BigMail",): 1}
    # labels sorted by name: pool, provider, source
    assert _by(values, "total_messages_delivered_by_provider_and_source") == {
        ("pool-1", "BigMail", "ip-1"): 2, ("pool-1", small_site, "ip-1"): 1}
    assert _by(values, "total_messages_fail_by_provider_and_source") == {
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
    values = _samples(await (await client.get("/metrics")).text())
    assert _by(values, "connection_count_by_provider") == {("BigMail",): 5, ("mx.small",): 1}
