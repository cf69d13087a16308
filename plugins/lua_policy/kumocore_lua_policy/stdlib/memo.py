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
  changed are ignored (``allow_stale_reads`` turns this off, as in KumoMTA);
* single flight: while one caller computes a missing key, later callers of the same key wait
  for its result rather than computing it again (a burst of messages must not become a
  burst of identical DNS or HTTP queries). A waiter gives up after ``populate_timeout``
  with an error naming the cache — or, with ``retry_on_populate_timeout``, computes the
  value itself in place of the caller that seems stuck (three waits at most); with
  ``allow_stale_reads`` it is answered with the expired value instead, when there is one.
* a failed computation fails its waiters too, and is remembered for 60 seconds (whatever
  ``ttl`` is): callers of that key meanwhile get the error without computing
  (:mod:`kumocore_lua_policy.stdlib.memo_failure`).

The computing Lua function itself is not interrupted at ``populate_timeout`` (nor is it in
KumoMTA); a Python ``async`` one is (see :func:`_populate`).

The caches themselves are :mod:`kumocore_lua_policy.stdlib.memo_cache`'s; this module
holds the registry of them by name and the two ways of calling through one.

The Lua form is built on :meth:`MemoRegistry.lookup`/:meth:`MemoRegistry.store` (see
``stdlib.lua``, which must call the Lua function itself so it may do I/O); Python policies
call :meth:`MemoRegistry.memoize`, which accepts plain and ``async`` functions.

Both count each call as KumoMTA's ``memoize_cache_*`` counters do: a lookup, then a hit
when it is answered with a value it did not compute (cached, computed by the caller it
waited for, or stale), a miss when with the value it computed; a call that fails is
neither. The cache counts the rest (:mod:`kumocore_lua_policy.stdlib.memo_cache`).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from kumocore import ConfigError
from kumocore_lua_policy.stdlib.epoch import ConfigEpoch
from kumocore_lua_policy.stdlib.memo_cache import MemoCache, MemoParams
from kumocore_lua_policy.stdlib.memo_failure import failure_error
from kumocore_lua_policy.stdlib.memo_flight import ABANDONED, Claim, Flight, Hit, Wait


def cache_key(args: tuple[Any, ...] | list[Any]) -> str:
    """The arguments as canonical JSON: equal values (tables too) give equal keys."""
    try:
        return orjson.dumps(
            list(args), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        ).decode()
    except TypeError as exc:
        raise ConfigError(
            f"kumo.memoize: an argument cannot be used as a cache key: {exc}"
        ) from None


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
    def lookup(self, name: str, *args: Any) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        """A call of the memoized Lua function ``name``.

        ``{hit = true, values, n}`` when the value is known (a Lua function's results are
        cached as the list of its ``n`` return values) — possibly after waiting for another
        caller that is computing it: then this returns an awaitable, which the bridge
        awaits. Otherwise ``{hit = false, flight, release}``: the caller computes, passes
        ``flight`` to :meth:`store`, and calls ``release(err)`` however it ended (an error,
        or nil when it was stopped), which is what its waiters then learn.
        """
        cache = self.caches[name]
        cache.stats.calls += 1
        turn = cache.begin(cache_key(args), self.epoch.value)
        if isinstance(turn, Wait):
            return self._lua_wait(cache, turn.flight)
        return _lua_turn(cache, turn)

    async def _lua_wait(self, cache: MemoCache, flight: Flight) -> dict[str, Any]:
        return _lua_turn(cache, await cache.wait(flight))

    def store(self, name: str, flight: Flight, n: int, *values: Any) -> dict[int, Any]:
        """Cache a Lua function's ``n`` results; returns them for Lua to hand out a copy."""
        results = list(values[:n]) + [None] * (n - len(values))
        cache = self.caches[name]
        cache.complete(flight, results)
        cache.stats.call_misses += 1
        return _sparse(results)

    # ------------------------------------------------------------------ Python policies
    def memoize(self, fn: Callable[..., Any], params: Any) -> Callable[..., Any]:
        """``kumo.memoize(fn, {...})`` for Python policies; ``fn`` may be ``async``."""
        if not callable(fn):
            raise ConfigError("kumo.memoize: the first argument must be a function")
        cache = self.cache(params)
        stats = cache.stats

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def cached_async(*args: Any) -> Any:
                stats.calls += 1
                turn = cache.begin(cache_key(args), self.epoch.value)
                if isinstance(turn, Wait):
                    turn = await cache.wait(turn.flight)
                if isinstance(turn, Claim):
                    work = _populate(cache.params, fn, args)
                    value = await cache.compute(turn.flight, work)
                    stats.call_misses += 1
                    return copy.deepcopy(value)
                stats.call_hits += 1
                return copy.deepcopy(turn.value)

            return cached_async

        # A plain function cannot be interleaved with another call: nothing to wait for.
        @functools.wraps(fn)
        def cached(*args: Any) -> Any:
            stats.calls += 1
            key, epoch = cache_key(args), self.epoch.value
            hit, value = cache.get(key)
            if hit:
                value = copy.deepcopy(cache.value(value))
                stats.call_hits += 1
                return value
            stats.populated += 1
            try:
                value = fn(*args)
            except Exception as exc:
                cache.put_failure(key, epoch, exc)
                raise
            cache.put(key, value, epoch)
            stats.call_misses += 1
            return copy.deepcopy(value)

        return cached


def _lua_turn(cache: MemoCache, turn: Hit | Claim) -> dict[str, Any]:
    """The table :meth:`MemoRegistry.lookup` answers Lua with."""
    if isinstance(turn, Hit):
        cache.stats.call_hits += 1
        return {"hit": True, "values": _sparse(turn.value), "n": len(turn.value)}
    flight = turn.flight

    def release(error: Any = None) -> None:
        if error is None:
            cache.finish(flight, ABANDONED)
        else:
            cache.fail(flight, failure_error(cache.params.name, error))

    return {"hit": False, "flight": flight, "release": release}


async def _populate(params: MemoParams, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Await ``fn(*args)`` within ``populate_timeout`` (three tries with ``retry_on_...``)."""
    tries = 3 if params.retry_on_populate_timeout else 1
    for attempt in range(tries):
        try:
            return await asyncio.wait_for(fn(*args), params.populate_timeout)
        except TimeoutError:
            if attempt + 1 == tries:
                raise ConfigError(
                    f"kumo.memoize '{params.name}': populating took longer than "
                    f"populate_timeout ({params.populate_timeout:g}s)"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover
