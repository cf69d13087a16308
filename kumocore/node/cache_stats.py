"""KumoMTA's per-cache counters for ``/metrics``: the ``lruttl_*`` families, labelled
``cache_name``, and for ``kumo.memoize`` caches the older ``memoize_cache_*`` ones.

KumoMTA counts every lookup, hit, miss, store, eviction and expiry of each named cache,
so that an operator can tell a cache that is too small (size flat at capacity, evictions
climbing) from one that simply sees varied keys (see ``kumo.set_lruttl_cache_capacity``).
kumocore's caches of the same job (:mod:`kumocore.node.cache_capacity`, the memoize
caches of the Lua plugin, the MTA-STS policies) count into a :class:`CacheStats` found by
the cache's name with :func:`cache_stats`; caches of one name share it, as KumoMTA's
counters are per name. Counting is a plain attribute increment, because a hit is on the
path of every routed message: no lock (the process's caches are used from its event loop,
or under their owner's lock), nothing allocated.

Counted as KumoMTA counts them: a lookup is a hit or a miss (``lruttl_lookup_count`` is
their sum); an entry found past its time is removed, an expiry and a miss; an entry
dropped to stay within capacity is an eviction. KumoMTA fills some caches through
``get_or_try_insert``, which counts a store as a population (``lruttl_populated_count``),
and others through ``insert`` (``lruttl_insert_count``): :data:`FILLED_ON_MISS` names the
first kind, whose stores kumocore reports as populations. Only memoize caches wait for
another caller's computation, fail one, or answer with a stale value, so only they move
``lruttl_waiting_populate``, ``lruttl_error_count`` and ``lruttl_stale_count``. The size
gauge is read at each scrape from the caches themselves.

The names are bounded as every labelled metric is (500 series, ``other`` among them:
:mod:`kumocore.admin.series_cap`), since a policy may make a ``kumo.memoize`` cache per
domain. At most :data:`MAX_CACHE_NAMES` names have counters: a place is kept for
:data:`OTHER` and for each of :data:`KUMOMTA_CACHES` (the names kumocore's own caches
count under, which always have their own), and the other names take the remaining places
in the order they are first used. A name first used after that counts into
:data:`OTHER`'s counters, with every other such name, as a capped counter family adds its
late labels to ``other``: each count goes to one name only, so the sums stay right, and a
name that has counters keeps them (nothing moves between names, no counter resets).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Sized

from prometheus_client.metrics_core import Metric

from kumocore.capped_keys import capped_entry

__all__ = ["FILLED_ON_MISS", "KUMOMTA_CACHES", "MAX_CACHE_NAMES", "OTHER", "CacheRegistry",
           "CacheStats", "cache_metrics", "cache_stats"]

#: The caches KumoMTA fills with ``get_or_try_insert`` (a store is a population there);
#: its other caches (broken TLS sites, globs, MTA-STS policies) are filled with ``insert``.
FILLED_ON_MISS = frozenset(
    {"acl_check", "acl_definition", "dkim_key_cache", "dkim_signer_cache", "dns_resolver_mx"}
)
#: The KumoMTA cache names kumocore's own caches count under: counted by name always.
KUMOMTA_CACHES = FILLED_ON_MISS | {
    "mod_filesystem_glob_cache", "mta_sts_policy", "smtp_dispatcher_broken_tls"}
#: At most this many names have counters (so series per ``lruttl_*`` family), ``OTHER``
#: included: the cap of every labelled metric (``MAX_SERIES`` of kumocore.admin.metrics).
MAX_CACHE_NAMES = 500
#: The name the caches made past the cap count under, together.
OTHER = "other"
#: The names whose place is kept for them, made or not (KumoMTA's must never be OTHER).
_PLACED = KUMOMTA_CACHES | {OTHER}


class CacheStats:
    """The counters of the caches called ``name`` (attributes the caches increment)."""

    __slots__ = (
        "_members",
        "call_hits",
        "call_misses",
        "calls",
        "errors",
        "evictions",
        "expirations",
        "filled_on_miss",
        "hits",
        "inserts",
        "memoize",
        "misses",
        "name",
        "populated",
        "stale",
        "waiting",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.filled_on_miss = name in FILLED_ON_MISS
        #: A ``kumo.memoize`` cache: also exported as ``memoize_cache_*``.
        self.memoize = False
        self.hits = 0  # found and fresh
        self.misses = 0  # absent, expired, or a remembered failure
        self.inserts = 0  # stored (a population in FILLED_ON_MISS caches)
        self.populated = 0  # computations started for a memoize cache
        self.evictions = 0  # dropped to stay within capacity
        self.expirations = 0  # found past their time and removed
        self.errors = 0  # memoize: computations failed, waits timed out
        self.stale = 0  # memoize: timed-out waits answered with the expired value
        self.waiting = 0  # memoize: callers waiting for another's computation (a gauge)
        self.calls = 0  # memoize: calls of the memoized function
        self.call_hits = 0  # memoize: calls answered with a value they did not compute
        self.call_misses = 0  # memoize: calls answered with the value they computed
        self._members: list[weakref.ref[Sized]] = []

    def track(self, cache: Sized) -> None:
        """Count ``cache``'s entries in the size gauge while it lives."""
        self._members[:] = [ref for ref in self._members if ref() is not None]
        self._members.append(weakref.ref(cache))

    def size(self) -> int:
        """Entries in the live caches of this name."""
        return sum(len(cache) for ref in self._members if (cache := ref()) is not None)


class CacheRegistry:
    """The counters by cache name: at most ``limit`` names (:data:`OTHER` included), of
    which :data:`KUMOMTA_CACHES` are always among them (see the module's doc)."""

    __slots__ = ("by_name", "limit")

    def __init__(self, limit: int = MAX_CACHE_NAMES) -> None:
        self.by_name: dict[str, CacheStats] = {}
        self.limit = limit

    def get(self, name: str) -> CacheStats:
        """The counters of ``name``: its own, made now if there is room, else OTHER's."""
        stats = self.by_name.get(name)  # a known name: this one lookup
        if stats is None:
            stats = capped_entry(self.by_name, name, self.limit, OTHER, CacheStats,
                                 reserved=_PLACED)  # fmt: skip
        return stats


_registry = CacheRegistry()


def cache_stats(name: str, *, memoize: bool = False) -> CacheStats:
    """The counters of the caches called ``name``, made on first use (``memoize``: a
    ``kumo.memoize`` cache, which adds the ``memoize_cache_*`` series); past
    :data:`MAX_CACHE_NAMES` names, a new name's are :data:`OTHER`'s, shared."""
    stats = _registry.get(name)
    if memoize:
        stats.memoize = True
    return stats


_LRUTTL = {
    "lruttl_cache_size": ("gauge", "entries held now by the named cache"),
    "lruttl_lookup_count": ("counter", "lookups in the named cache"),
    "lruttl_hit_count": ("counter", "lookups that found a fresh entry"),
    "lruttl_miss_count": ("counter", "lookups that found no usable entry"),
    "lruttl_insert_count": ("counter", "entries stored outright (not through a lookup)"),
    "lruttl_populated_count": ("counter", "lookups that computed the entry they missed"),
    "lruttl_evict_count": ("counter", "entries dropped to keep within capacity"),
    "lruttl_expire_count": ("counter", "entries removed because their time was up"),
    "lruttl_error_count": ("counter", "computations of an entry that failed or timed out"),
    "lruttl_stale_count": ("counter", "timed-out waits answered with an expired entry"),
    "lruttl_waiting_populate": ("gauge", "callers waiting now for an entry to be computed"),
}
_MEMOIZE = {
    "memoize_cache_lookup_count": "calls of the memoized function",
    "memoize_cache_hit_count": "calls answered without computing (cached or awaited)",
    "memoize_cache_miss_count": "calls answered with the value they computed",
    "memoize_cache_populated_count": "computations of the memoized function started",
}


def _lruttl_values(stats: CacheStats) -> tuple[int, ...]:
    """The values of :data:`_LRUTTL`'s families, in its order."""
    inserts, populated = stats.inserts, stats.populated
    if stats.filled_on_miss:
        inserts, populated = 0, populated + inserts
    return (stats.size(), stats.hits + stats.misses, stats.hits, stats.misses, inserts,
            populated, stats.evictions, stats.expirations, stats.errors, stats.stale,
            stats.waiting)  # fmt: skip


def _memoize_values(stats: CacheStats) -> tuple[int, ...]:
    """The values of :data:`_MEMOIZE`'s families, in its order."""
    return stats.calls, stats.call_hits, stats.call_misses, stats.populated


def cache_metrics(caches: Iterable[CacheStats] | None = None) -> Iterator[Metric]:
    """The ``lruttl_*`` families of ``caches`` (default: every named cache made so far),
    and the ``memoize_cache_*`` ones of the memoize caches among them."""
    lruttl = {name: Metric(name, text, kind) for name, (kind, text) in _LRUTTL.items()}
    memoize = {name: Metric(name, text, "counter") for name, text in _MEMOIZE.items()}
    chosen = _registry.by_name.values() if caches is None else caches
    for stats in sorted(chosen, key=lambda stats: stats.name):
        labels = {"cache_name": stats.name}
        for metric, value in zip(lruttl.values(), _lruttl_values(stats), strict=True):
            metric.add_sample(metric.name, labels, value)
        if stats.memoize:
            for metric, value in zip(memoize.values(), _memoize_values(stats), strict=True):
                metric.add_sample(metric.name, labels, value)
    for metric in (*lruttl.values(), *memoize.values()):
        if metric.samples:
            yield metric
