"""KumoMTA's per-cache counters (``lruttl_*``, ``memoize_cache_*``): what kumocore's named
caches count, and how ``/metrics`` shows it. The registry is the process's, shared by
every test: counts are compared before and after, or read from caches of their own."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

import kumocore
from kumocore.admin.merge import merge_metrics_text
from kumocore.admin.peers import PeerAnswer
from kumocore.node.cache_capacity import NamedLru, TtlCache, set_capacity
from kumocore.node.cache_stats import (
    KUMOMTA_CACHES,
    MAX_CACHE_NAMES,
    OTHER,
    CacheRegistry,
    CacheStats,
    cache_metrics,
    cache_stats,
)
from tests.support.metric_samples import samples

BROKEN_TLS = "smtp_dispatcher_broken_tls"


def _counts(stats: CacheStats) -> dict[str, int]:
    return {name: getattr(stats, name) for name in (
        "hits", "misses", "inserts", "evictions", "expirations")}


def _delta(before: dict[str, int], stats: CacheStats) -> dict[str, int]:
    after = _counts(stats)
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def _values(metrics: list[Metric]) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels["cache_name"]): s.value for m in metrics for s in m.samples}


def test_a_named_lru_counts_lookups_stores_expiries_and_evictions() -> None:
    cache: NamedLru[str, float] = NamedLru(BROKEN_TLS, ceiling=2, expiry=float)
    before = _counts(cache.stats)
    cache["a"], cache["b"] = 100.0, 5.0
    assert cache.lookup("a", now=50.0) == 100.0  # a hit
    assert cache.lookup("x", now=50.0) is None  # absent: a miss
    assert cache.lookup("b", now=50.0) is None  # expired: a miss, removed
    assert "b" not in cache
    cache["c"], cache["d"] = 200.0, 300.0  # past the ceiling of 2: "a" goes
    assert list(cache) == ["c", "d"]
    assert _delta(before, cache.stats) == {
        "hits": 1, "misses": 2, "inserts": 4, "evictions": 1, "expirations": 1}


def test_shrinking_a_named_cache_counts_what_it_drops_as_evictions() -> None:
    cache: NamedLru[str, int] = NamedLru(BROKEN_TLS)
    for key in "abcde":
        cache[key] = 1
    before = _counts(cache.stats)
    try:
        set_capacity(BROKEN_TLS, 2)
    finally:
        set_capacity(BROKEN_TLS, 64 * 1024)
    assert len(cache) == 2
    assert _delta(before, cache.stats) == {"evictions": 3}


def test_a_hot_path_counts_hits_inline_and_misses_with_missed() -> None:
    cache: NamedLru[str, int] = NamedLru(BROKEN_TLS)
    cache["old"] = 1
    before = _counts(cache.stats)
    cache.missed("old", cache.get("old"))  # found, but outdated: removed
    cache.missed("new", None)
    assert "old" not in cache
    assert _delta(before, cache.stats) == {"misses": 2, "expirations": 1}


def test_a_ttl_cache_counts_like_kumomtas_lruttl() -> None:
    cache: TtlCache[str, str] = TtlCache(2)  # unnamed: counted by itself alone
    cache.put("a", "A", expires=10.0)
    cache.put("b", "B", expires=1.0)
    assert cache.get("a", now=5.0) == (True, "A")
    assert cache.get("b", now=5.0) == (False, None)  # expired: removed
    assert cache.get("z", now=5.0) == (False, None)
    cache.put("c", "C", expires=10.0)
    cache.put("d", "D", expires=10.0)  # over capacity 2: "a" goes
    assert _counts(cache.stats) == {
        "hits": 1, "misses": 2, "inserts": 4, "evictions": 1, "expirations": 1}
    assert cache.stats.size() == 2


def test_a_ttl_cache_sized_by_its_owner_counts_under_the_name_given() -> None:
    cache: TtlCache[str, int] = TtlCache(4, counted_as="dkim_signer_cache")
    assert cache.stats is cache_stats("dkim_signer_cache")
    assert cache.capacity == 4  # the owner's, not the name's


def test_the_size_gauge_counts_only_caches_still_alive() -> None:
    stats = CacheStats("test")
    kept: TtlCache[str, int] = TtlCache(10)
    dropped: TtlCache[str, int] = TtlCache(10)
    stats.track(kept)
    stats.track(dropped)
    kept.put("k", 1, expires=10.0)
    dropped.put("k", 1, expires=10.0)
    assert stats.size() == 2
    del dropped
    gc.collect()
    assert stats.size() == 1


def test_lookups_are_hits_plus_misses_and_every_family_is_labelled_by_cache_name() -> None:
    stats = CacheStats("mta_sts_policy")
    stats.hits, stats.misses, stats.inserts, stats.evictions = 5, 2, 2, 1
    values = _values(list(cache_metrics([stats])))
    name = "mta_sts_policy"
    assert values[("lruttl_lookup_count", name)] == 7
    assert values[("lruttl_hit_count", name)] == 5
    assert values[("lruttl_miss_count", name)] == 2
    assert values[("lruttl_insert_count", name)] == 2  # filled with insert in KumoMTA
    assert values[("lruttl_populated_count", name)] == 0
    assert values[("lruttl_evict_count", name)] == 1
    assert values[("lruttl_cache_size", name)] == 0
    assert not any(metric.startswith("memoize_") for metric, _ in values)


def test_stores_of_caches_kumomta_fills_on_a_miss_are_populations() -> None:
    stats = CacheStats("dns_resolver_mx")
    stats.inserts = 3
    values = _values(list(cache_metrics([stats])))
    assert values[("lruttl_populated_count", "dns_resolver_mx")] == 3
    assert values[("lruttl_insert_count", "dns_resolver_mx")] == 0


def test_memoize_caches_also_have_the_memoize_cache_families() -> None:
    stats = CacheStats("user.lookup")
    stats.memoize = True
    stats.calls, stats.call_hits, stats.call_misses, stats.populated = 4, 2, 1, 2
    stats.errors, stats.stale, stats.waiting = 1, 1, 3
    values = _values(list(cache_metrics([stats])))
    assert values[("memoize_cache_lookup_count", "user.lookup")] == 4
    assert values[("memoize_cache_hit_count", "user.lookup")] == 2
    assert values[("memoize_cache_miss_count", "user.lookup")] == 1
    assert values[("memoize_cache_populated_count", "user.lookup")] == 2
    assert values[("lruttl_populated_count", "user.lookup")] == 2
    assert values[("lruttl_error_count", "user.lookup")] == 1
    assert values[("lruttl_stale_count", "user.lookup")] == 1
    assert values[("lruttl_waiting_populate", "user.lookup")] == 3


def test_counters_and_gauges_have_kumomtas_types_and_no_total_suffix() -> None:
    metrics = {m.name: m for m in cache_metrics([CacheStats("acl_check")])}
    assert metrics["lruttl_cache_size"].type == "gauge"
    assert metrics["lruttl_waiting_populate"].type == "gauge"
    assert metrics["lruttl_hit_count"].type == "counter"
    assert [s.name for s in metrics["lruttl_hit_count"].samples] == ["lruttl_hit_count"]


def test_no_caches_no_families() -> None:
    assert list(cache_metrics([])) == []


def test_plugins_reach_the_counters_through_kumocores_public_api() -> None:
    assert kumocore.cache_stats is cache_stats
    assert kumocore.CacheStats is CacheStats
    assert cache_stats("user.api", memoize=True) is cache_stats("user.api")
    assert cache_stats("user.api").memoize


def _worker_text(hits: int, entries: int) -> bytes:
    """One worker's exposition of an ``acl_check`` cache with ``hits`` and ``entries``."""
    stats = CacheStats("acl_check")
    stats.hits = hits
    cache: TtlCache[int, int] = TtlCache(100)
    stats.track(cache)
    for key in range(entries):
        cache.put(key, key, expires=10.0)

    class Collector:
        def collect(self) -> Iterator[Metric]:
            return cache_metrics([stats])

    registry = CollectorRegistry()
    registry.register(Collector())
    return generate_latest(registry)


def test_a_nodes_workers_counts_and_sizes_are_summed() -> None:
    local = web.Response(body=_worker_text(hits=2, entries=3))
    merged = merge_metrics_text(local, [PeerAnswer(1, 200, _worker_text(hits=5, entries=1))])
    assert isinstance(merged.body, bytes)
    values = samples(merged.body.decode())
    assert values[("lruttl_hit_count", (("cache_name", "acl_check"),))] == 7
    assert values[("lruttl_cache_size", (("cache_name", "acl_check"),))] == 4


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> CacheRegistry:
    """A registry of this test's own: the process's must not fill up for later tests."""
    fresh = CacheRegistry()
    monkeypatch.setattr(sys.modules["kumocore.node.cache_stats"], "_registry", fresh)
    return fresh


def _per_domain_caches(count: int) -> list[TtlCache[str, str]]:
    """A policy's memoize cache per domain, ``domain<n>.test``: each one looked up twice
    (a miss, then a hit) and holding one entry."""
    caches: list[TtlCache[str, str]] = []
    for n in range(count):
        name = f"tenant.of.domain{n}.test"
        cache: TtlCache[str, str] = TtlCache(10, counted_as=name)
        cache_stats(name, memoize=True).calls += 2
        cache.get("k", now=0.0)
        cache.put("k", "tenant", expires=10.0)
        cache.get("k", now=0.0)
        caches.append(cache)
    return caches


def _series(name: str) -> dict[str, float]:
    (family,) = [m for m in cache_metrics() if m.name == name]
    return {s.labels["cache_name"]: s.value for s in family.samples}


def test_past_500_cache_names_new_names_count_together_under_other_and_every_count_is_kept(
    registry: CacheRegistry,
) -> None:
    for name in KUMOMTA_CACHES:
        cache_stats(name)
    caches = _per_domain_caches(600)
    own = MAX_CACHE_NAMES - 1 - len(KUMOMTA_CACHES)  # the places left for a policy's names
    for family in ("lruttl_hit_count", "lruttl_miss_count", "lruttl_insert_count",
                   "lruttl_cache_size", "memoize_cache_lookup_count"):  # fmt: skip
        values = _series(family)
        policy = {name: value for name, value in values.items() if name not in KUMOMTA_CACHES}
        assert len(policy) == own + 1  # and KumoMTA's names in the lruttl_* families: 500
        assert len(values) == (MAX_CACHE_NAMES if family.startswith("lruttl_") else own + 1)
        assert sum(policy.values()) == 600 * (2 if family == "memoize_cache_lookup_count" else 1)
        assert policy[OTHER] == (600 - own) * policy["tenant.of.domain0.test"]
    names = set(_series("lruttl_hit_count"))
    assert {f"tenant.of.domain{n}.test" for n in range(own)} <= names  # the first ones
    assert f"tenant.of.domain{own}.test" not in names
    assert len(registry.by_name) == MAX_CACHE_NAMES
    assert all(cache.stats.name == OTHER for cache in caches[own:])


def test_kumomtas_cache_names_keep_their_own_counters_after_a_policy_used_up_the_names(
    registry: CacheRegistry,
) -> None:
    _per_domain_caches(600)
    for name in KUMOMTA_CACHES:
        assert cache_stats(name).name == name
    assert len(registry.by_name) == MAX_CACHE_NAMES  # OTHER's place was kept as well


def test_a_name_keeps_the_counters_it_got_and_a_late_name_made_again_counts_on_under_other(
    registry: CacheRegistry,
) -> None:
    early = cache_stats("tenant.early", memoize=True)
    early.hits = 7
    _per_domain_caches(600)
    assert cache_stats("tenant.early") is early  # no move, no reset: still its own
    late = cache_stats("tenant.late", memoize=True)  # a reload makes it again:
    late.hits += 1
    assert cache_stats("tenant.late") is late is registry.by_name[OTHER]
    assert "tenant.late" not in registry.by_name
    assert _series("lruttl_hit_count")["tenant.early"] == 7
