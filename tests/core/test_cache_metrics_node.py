"""A node's ``/metrics`` shows KumoMTA's per-cache counters: ``lruttl_*`` for its named
caches (the MX sets, the broken-TLS sites...) and, for a policy's ``kumo.memoize`` cache,
``memoize_cache_*`` too, labelled ``cache_name``. A real node, a Lua policy, the sink."""

from __future__ import annotations

import sys

import pytest

from kumocore.node.cache_stats import KUMOMTA_CACHES, MAX_CACHE_NAMES, OTHER, CacheRegistry
from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import Samples, samples, series

POLICY = """
local kumo = require 'kumo'
local cached = kumo.memoize(function(domain) return 'tenant of ' .. domain end,
                            { name = 'node.tenant', ttl = '1h', capacity = 10 })
kumo.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', cached(msg:recipient().domain))
end)
"""


async def _scrape(node: Node) -> Samples:
    return samples((await node.admin("GET", "/metrics"))[1])


def _moved(before: Samples, after: Samples, metric: str, cache: str) -> float:
    key = (metric, (("cache_name", cache),))
    return after[key] - before.get(key, 0)


async def test_the_memoize_cache_of_a_policy_is_counted_per_call_and_per_lookup(
    make_node: MakeNode,
) -> None:
    node = await make_node(POLICY)
    before = await _scrape(node)
    for _ in range(3):
        await node.send(recipients="someone@example.com")
    await node.wait_for("Delivery", count=3)
    after = await _scrape(node)
    moved = {metric: _moved(before, after, metric, "node.tenant") for metric in (
        "memoize_cache_lookup_count", "memoize_cache_hit_count", "memoize_cache_miss_count",
        "memoize_cache_populated_count", "lruttl_lookup_count", "lruttl_hit_count",
        "lruttl_miss_count", "lruttl_populated_count", "lruttl_insert_count")}
    assert moved == {
        "memoize_cache_lookup_count": 3, "memoize_cache_hit_count": 2,
        "memoize_cache_miss_count": 1, "memoize_cache_populated_count": 1,
        "lruttl_lookup_count": 3, "lruttl_hit_count": 2, "lruttl_miss_count": 1,
        "lruttl_populated_count": 1, "lruttl_insert_count": 0}
    assert after[("lruttl_cache_size", (("cache_name", "node.tenant"),))] == 1
    assert after[("lruttl_waiting_populate", (("cache_name", "node.tenant"),))] == 0


async def test_the_mx_and_broken_tls_caches_count_their_lookups(make_node: MakeNode) -> None:
    node = await make_node()
    before = await _scrape(node)
    for count in (1, 2):
        # One at a time: two messages routed in one batch would share one lookup.
        await node.send(recipients="someone@example.com")
        await node.wait_for("Delivery", count=count)
    after = await _scrape(node)
    mx = {metric: _moved(before, after, metric, "dns_resolver_mx") for metric in (
        "lruttl_lookup_count", "lruttl_hit_count", "lruttl_miss_count",
        "lruttl_populated_count", "lruttl_insert_count")}
    assert mx["lruttl_hit_count"] >= 1 and mx["lruttl_miss_count"] >= 1  # asked, then kept
    assert mx["lruttl_lookup_count"] == mx["lruttl_hit_count"] + mx["lruttl_miss_count"]
    assert mx["lruttl_populated_count"] >= 1  # KumoMTA fills this one on a miss
    assert mx["lruttl_insert_count"] == 0
    assert after[("lruttl_cache_size", (("cache_name", "dns_resolver_mx"),))] >= 1
    # Every connection asks whether the site's TLS is remembered as broken: it is not.
    broken_tls = "smtp_dispatcher_broken_tls"
    assert _moved(before, after, "lruttl_miss_count", broken_tls) >= 1
    assert _moved(before, after, "lruttl_hit_count", broken_tls) == 0


PER_DOMAIN_POLICY = """
local kumo = require 'kumo'
local tenant_of = {}
for n = 1, 600 do  -- a memoize cache per domain, named after it
  tenant_of[n] = kumo.memoize(function(domain) return 'tenant of ' .. domain end,
                              { name = 'tenant.of.domain' .. n .. '.test', ttl = '1h',
                                capacity = 10 })
end
kumo.on('smtp_server_message_received', function(msg)
  for n = 1, 600 do tenant_of[n](msg:recipient().domain) end
end)
"""


async def test_a_memoize_cache_per_domain_gets_500_cache_name_series_at_most_the_rest_other(
    monkeypatch: pytest.MonkeyPatch, make_node: MakeNode
) -> None:
    # The node's registry is the process's: this test fills one of its own.
    monkeypatch.setattr(sys.modules["kumocore.node.cache_stats"], "_registry", CacheRegistry())
    node = await make_node(PER_DOMAIN_POLICY)
    await node.send(recipients="someone@example.com")
    await node.wait_for("Delivery")
    after = await _scrape(node)
    for family in ("lruttl_miss_count", "lruttl_populated_count", "lruttl_cache_size",
                   "memoize_cache_lookup_count"):  # fmt: skip
        values = series(after, family)
        assert len(values) <= MAX_CACHE_NAMES
        policy = {name: v for (name,), v in values.items() if name not in KUMOMTA_CACHES}
        assert sum(policy.values()) == 600  # one call, miss, computation, entry each
        assert policy[OTHER] == 600 - (len(policy) - 1)
    assert len(series(after, "lruttl_miss_count")) == len(series(after, "lruttl_hit_count"))
    assert ("tenant.of.domain1.test",) in series(after, "memoize_cache_miss_count")
    assert ("tenant.of.domain600.test",) not in series(after, "memoize_cache_miss_count")
    assert ("dns_resolver_mx",) in series(after, "lruttl_lookup_count")  # kept by name
