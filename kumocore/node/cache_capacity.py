"""Caches sized by name: ``kumo.set_lruttl_cache_capacity(NAME, CAPACITY)``.

KumoMTA names its fixed caches (``declare_cache!`` in its crates) and lets a policy set
each one's capacity by that name. kumocore's caches that do the same job register here
under KumoMTA's name, with KumoMTA's default capacity; a new capacity applies at once to
every cache of that name (those holding more drop their least recently used entries) and
to those made later (a policy calls this in ``pre_init``, before the node builds them).

A name KumoMTA has but kumocore has no such cache for (or one of fixed size) is an error
that says why (:data:`UNSIZED`), as is a name KumoMTA does not have (KumoMTA's own error
text).
Capacities are per process, as in KumoMTA: each ``--workers`` process sets its own.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from kumocore.errors import ConfigError
from kumocore.node.cache_stats import CacheStats, cache_stats

__all__ = [
    "DEFAULTS",
    "UNSIZED",
    "NamedLru",
    "TtlCache",
    "capacity_of",
    "register",
    "set_capacity",
    "set_lruttl_cache_capacity",
]

#: KumoMTA's names of the caches kumocore has, with KumoMTA's default capacity.
DEFAULTS: dict[str, int] = {
    "acl_check": 128,
    "acl_definition": 128,
    "dkim_signer_cache": 1024,
    "dns_resolver_mx": 64 * 1024,
    "mod_filesystem_glob_cache": 32,
    "mta_sts_policy": 64 * 1024,
    "smtp_dispatcher_broken_tls": 64 * 1024,
}

_ADDRESSES = (
    "addresses are kept as A and AAAA answers in the resolver's one answer cache, "
    "sized by kumo.dns.configure_resolver's cache_size option"
)
_TLS = "kumocore keeps no cache of TLS configurations by that name"
#: KumoMTA's other cache names, each with why kumocore cannot size a cache by that name
#: (it has no such cache, or that cache's size is fixed).
UNSIZED: dict[str, str] = {
    "dns_resolver_ip": _ADDRESSES,
    "dns_resolver_ipv4": _ADDRESSES,
    "dns_resolver_ipv6": _ADDRESSES,
    "dkim_key_cache": "kumocore keeps one parsed key per key file (replaced when the file "
    "changes) and the last 256 inline keys; that cache has no capacity to set",
    "egress_source_pools": "kumocore keeps at most 128 egress pools; that limit is fixed",
    "egress_source_sources": "kumocore keeps at most 128 egress sources; that limit is fixed",
    "http_server_auth": "kumocore does not cache HTTP credential checks",
    "rustls_client_config": _TLS,
    "smtp_dispatcher_client_certificate": _TLS,
    "smtp_server_tls_config": _TLS,
}


class Resizable(Protocol):
    def resize(self, capacity: int) -> None:
        """Hold at most ``capacity`` entries from now on."""
        ...


_capacities: dict[str, int] = dict(DEFAULTS)
#: The live caches of each name (weak: a cache dropped by its owner leaves no trace here).
_members: dict[str, list[weakref.ref[Resizable]]] = {name: [] for name in DEFAULTS}


def capacity_of(name: str) -> int:
    """The capacity caches called ``name`` have now."""
    return _capacities[name]


def register(name: str, cache: Resizable) -> int:
    """Size ``cache`` by ``name`` from now on; returns the capacity to start with."""
    members = _members[name]
    members[:] = [ref for ref in members if ref() is not None]
    members.append(weakref.ref(cache))
    return _capacities[name]


def set_capacity(name: Any, capacity: Any) -> None:
    """Set the capacity of KumoMTA's cache ``name`` (``dns_resolver_mx``...) for kumocore's
    caches of that name, now and later."""
    if not isinstance(name, str) or (name not in DEFAULTS and name not in UNSIZED):
        raise ConfigError(
            f"could not set capacity for cache {name} "
            "as that is not a pre-defined lruttl cache name"
        )
    if name in UNSIZED:
        raise ConfigError(
            f"kumo.set_lruttl_cache_capacity: kumocore cannot set the capacity of {name}: "
            f"{UNSIZED[name]}"
        )
    if isinstance(capacity, float) and capacity.is_integer():
        capacity = int(capacity)
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
        raise ConfigError(
            f"kumo.set_lruttl_cache_capacity: capacity must be a whole number >= 0, "
            f"got {capacity!r:.40}"
        )
    _capacities[name] = capacity
    for ref in list(_members[name]):
        cache = ref()
        if cache is not None:
            cache.resize(capacity)


#: The name policies and plugins know it by (``kumocore.set_lruttl_cache_capacity``).
set_lruttl_cache_capacity = set_capacity


def reset() -> None:
    """Every capacity back to its default (tests)."""
    for name, default in DEFAULTS.items():
        set_capacity(name, default)


K = TypeVar("K")
V = TypeVar("V")


class NamedLru(OrderedDict[K, V]):
    """A dict of at most the named capacity (and at most ``ceiling``, when its owner has a
    bound of its own): storing past it drops the least recently stored entry (reads do
    not reorder: callers that want that ``move_to_end``).

    Counted under its name (:mod:`kumocore.node.cache_stats`): every store, every entry
    dropped for capacity, and the reads made with :meth:`lookup` (a plain ``get`` is not
    counted). ``expiry`` gives an entry's expiry time from its value (none: entries hold
    until dropped). Values are never None."""

    def __init__(
        self, name: str, *, ceiling: int | None = None, expiry: Callable[[V], float] | None = None
    ) -> None:
        super().__init__()
        self._ceiling = ceiling
        self._expiry = expiry
        self._capacity = register(name, self)
        self.stats = cache_stats(name)
        self.stats.track(self)

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        self.stats.inserts += 1
        self._trim()

    def lookup(self, key: K, now: float) -> V | None:
        """The entry for ``key`` unless it expired by ``now`` (the caller's clock), counted
        as a hit; else None, counted by :meth:`missed`."""
        value = self.get(key)
        if value is None:
            self.stats.misses += 1
            return None
        expiry = self._expiry
        if expiry is None or expiry(value) > now:
            self.stats.hits += 1
            return value
        self.missed(key, value)
        return None

    def missed(self, key: K, found: V | None) -> None:
        """Count a lookup of ``key`` that found nothing usable: a miss, and when it found
        ``found``, an entry that no longer holds, that entry's removal (an expiry). For a
        caller that checks entries itself on a hot path and counts its hits inline."""
        self.stats.misses += 1
        if found is not None:
            del self[key]
            self.stats.expirations += 1

    def resize(self, capacity: int) -> None:
        self._capacity = capacity
        self._trim()

    def set_ceiling(self, ceiling: int | None) -> None:
        self._ceiling = ceiling
        self._trim()

    def _trim(self) -> None:
        limit = self._capacity if self._ceiling is None else min(self._capacity, self._ceiling)
        while len(self) > limit:
            self.popitem(last=False)
            self.stats.evictions += 1


class TtlCache(Generic[K, V]):
    """A least-recently-used map of at most ``capacity`` entries, each with an expiry
    (``now`` is the caller's clock); with ``name``, sized by that name too. Not locked:
    a cache shared with threads is used under its owner's lock (the DKIM signers).

    Counted (:mod:`kumocore.node.cache_stats`) under ``name``, or under ``counted_as``
    for a cache its owner sizes (the DKIM signers); with neither, the counts are kept by
    the cache alone."""

    def __init__(
        self, capacity: int, *, name: str | None = None, counted_as: str | None = None
    ) -> None:
        self.capacity = capacity if name is None else register(name, self)
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        counted_as = name if counted_as is None else counted_as
        self.stats = CacheStats("") if counted_as is None else cache_stats(counted_as)
        self.stats.track(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, now: float) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return False, None
        if entry[0] <= now:
            del self._entries[key]
            self.stats.expirations += 1
            self.stats.misses += 1
            return False, None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return True, entry[1]

    def put(self, key: K, value: V, expires: float) -> None:
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        self.stats.inserts += 1
        self._trim()

    def resize(self, capacity: int) -> None:
        """Hold at most ``capacity`` entries from now on (least recently used go first)."""
        self.capacity = capacity
        self._trim()

    def clear(self) -> None:
        self._entries.clear()

    def _trim(self) -> None:
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.stats.evictions += 1
