"""``kumo.memoize``: named caches of a function's results, keyed by its arguments.

KumoMTA's semantics, which these caches follow:

* a cache is named (``name``), and the name is what persists: a policy reloaded in a fresh
  Lua state that memoizes under the same name finds the entries already computed;
* entries live ``ttl`` (a duration) and at most ``capacity`` of them are kept, the least
  recently used going first;
* the key is the arguments' value (tables compared by content, not identity);
* results (all of a Lua function's return values) are stored as data and handed out as
  fresh copies on every hit, so a caller that modifies a returned table does not change the
  cache (functions cannot be cached);
* ``invalidate_with_epoch = true``: entries made before the configuration epoch last
  changed are ignored (``allow_stale_reads`` turns this off, as in KumoMTA).

The Lua form is built on :meth:`MemoRegistry.lookup`/:meth:`MemoRegistry.store` (see
``stdlib.lua``, which must call the Lua function itself so it may do I/O); Python policies
call :meth:`MemoRegistry.memoize`, which accepts plain and ``async`` functions.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kumocore import ConfigError
from kumocore.config.duration import duration_seconds
from kumocore_lua_policy.stdlib.epoch import ConfigEpoch

_KNOWN = frozenset({
    "name", "ttl", "capacity", "invalidate_with_epoch", "populate_timeout",
    "retry_on_populate_timeout", "allow_stale_reads",
})


@dataclass(frozen=True)
class MemoParams:
    name: str
    ttl: float
    capacity: int
    invalidate_with_epoch: bool = False
    populate_timeout: float = 120.0
    retry_on_populate_timeout: bool = False

    @classmethod
    def parse(cls, params: Any) -> MemoParams:
        if not isinstance(params, Mapping):
            raise ConfigError("kumo.memoize(fn, { name = ..., ttl = ..., capacity = ... }): "
                              "the second argument must be a table")
        unknown = sorted(set(params) - _KNOWN)
        if unknown:
            raise ConfigError(f"kumo.memoize: unknown parameter(s) {', '.join(map(str, unknown))}"
                              f"; known: {', '.join(sorted(_KNOWN))}")
        for required in ("name", "ttl", "capacity"):
            if params.get(required) is None:
                raise ConfigError(f"kumo.memoize: the '{required}' parameter is required")
        name, capacity = params["name"], params["capacity"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"kumo.memoize: 'name' must be a non-empty string, got {name!r}")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ConfigError(f"kumo.memoize: 'capacity' must be a positive integer, "
                              f"got {capacity!r}")
        try:
            ttl = duration_seconds(params["ttl"])
            timeout = duration_seconds(params.get("populate_timeout", 120))
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"kumo.memoize '{name}': {exc}") from None
        stale_ok = bool(params.get("allow_stale_reads", False))
        epoch = bool(params.get("invalidate_with_epoch", False)) and not stale_ok
        retry = bool(params.get("retry_on_populate_timeout", False))
        return cls(name, ttl, capacity, epoch, timeout, retry)


def cache_key(args: tuple[Any, ...] | list[Any]) -> str:
    """The arguments as canonical JSON: equal values (tables too) give equal keys."""
    try:
        return orjson.dumps(list(args), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
                            ).decode()
    except TypeError as exc:
        raise ConfigError(f"kumo.memoize: an argument cannot be used as a cache key: {exc}") \
            from None


class MemoCache:
    """One named LRU cache with a time-to-live."""

    def __init__(self, params: MemoParams, epoch: ConfigEpoch) -> None:
        self.params = params
        self._epoch = epoch
        self._entries: OrderedDict[str, tuple[float, int, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, epoch, value = entry
        stale = self.params.invalidate_with_epoch and epoch != self._epoch.value
        if stale or time.monotonic() >= expires:
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: str, value: Any, epoch: int) -> None:
        if callable(value) or (isinstance(value, list) and any(map(callable, value))):
            raise ConfigError(f"kumo.memoize '{self.params.name}': a function result cannot "
                              "be cached")
        self._entries[key] = (time.monotonic() + self.params.ttl, epoch, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.params.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def _sparse(values: list[Any]) -> dict[int, Any]:
    """Results as a Lua array that may hold nils (``{1: a, 3: c}``), unpacked with ``n``."""
    return {i: v for i, v in enumerate(values, 1) if v is not None}


class MemoRegistry:
    """Every named cache of the process (what KumoMTA keeps across Lua states)."""

    def __init__(self, epoch: ConfigEpoch) -> None:
        self.epoch = epoch
        self.caches: dict[str, MemoCache] = {}

    def cache(self, params: Any) -> MemoCache:
        parsed = MemoParams.parse(params)
        cache = self.caches.get(parsed.name)
        if cache is None or cache.params != parsed:
            cache = MemoCache(parsed, self.epoch)  # new or re-parameterised: start empty
            self.caches[parsed.name] = cache
        return cache

    # ------------------------------------------------------------------ Lua's helpers
    def lookup(self, name: str, *args: Any) -> dict[str, Any]:
        """``{hit, values, n, key, epoch}`` for a call of the memoized Lua function ``name``
        (a Lua function's results are cached as the list of its ``n`` return values)."""
        key = cache_key(args)
        hit, values = self.caches[name].get(key)
        found: dict[str, Any] = {"hit": hit, "key": key, "epoch": self.epoch.value}
        if hit:
            found.update(values=_sparse(values), n=len(values))
        return found

    def store(self, name: str, key: str, epoch: int, n: int, *values: Any) -> dict[int, Any]:
        """Cache a Lua function's ``n`` results; returns them for Lua to hand out a copy."""
        results = list(values[:n]) + [None] * (n - len(values))
        self.caches[name].put(key, results, epoch)
        return _sparse(results)

    # ------------------------------------------------------------------ Python policies
    def memoize(self, fn: Callable[..., Any], params: Any) -> Callable[..., Any]:
        """``kumo.memoize(fn, {...})`` for Python policies; ``fn`` may be ``async``."""
        if not callable(fn):
            raise ConfigError("kumo.memoize: the first argument must be a function")
        cache = self.cache(params)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def cached_async(*args: Any) -> Any:
                key, epoch = cache_key(args), self.epoch.value
                hit, value = cache.get(key)
                if not hit:
                    value = await _populate(cache.params, fn, args)
                    cache.put(key, value, epoch)
                return copy.deepcopy(value)

            return cached_async

        @functools.wraps(fn)
        def cached(*args: Any) -> Any:
            key, epoch = cache_key(args), self.epoch.value
            hit, value = cache.get(key)
            if not hit:
                value = fn(*args)
                cache.put(key, value, epoch)
            return copy.deepcopy(value)

        return cached


async def _populate(params: MemoParams, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Await ``fn(*args)`` within ``populate_timeout`` (three tries with ``retry_on_...``)."""
    tries = 3 if params.retry_on_populate_timeout else 1
    for attempt in range(tries):
        try:
            return await asyncio.wait_for(fn(*args), params.populate_timeout)
        except TimeoutError:
            if attempt + 1 == tries:
                raise ConfigError(f"kumo.memoize '{params.name}': populating took longer than "
                                  f"populate_timeout ({params.populate_timeout:g}s)") from None
    raise AssertionError("unreachable")  # pragma: no cover
