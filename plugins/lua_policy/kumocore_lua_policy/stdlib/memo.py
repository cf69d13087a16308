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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kumocore import ConfigError, register_memory_cache
from kumocore.config.duration import duration_seconds
from kumocore_lua_policy.stdlib.epoch import ConfigEpoch
from kumocore_lua_policy.stdlib.memo_failure import (
    FAILURE_TTL,
    Failure,
    failure_error,
    fresh_error,
)
from kumocore_lua_policy.stdlib.memo_flight import (
    ABANDONED,
    WAITS_WITH_RETRY,
    Claim,
    Flight,
    Hit,
    Outcome,
    Wait,
)

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
    allow_stale_reads: bool = False

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
        return cls(name, ttl, capacity, epoch, timeout, retry, stale_ok)


def cache_key(args: tuple[Any, ...] | list[Any]) -> str:
    """The arguments as canonical JSON: equal values (tables too) give equal keys."""
    try:
        return orjson.dumps(list(args), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
                            ).decode()
    except TypeError as exc:
        raise ConfigError(f"kumo.memoize: an argument cannot be used as a cache key: {exc}") \
            from None


class MemoCache:
    """One named LRU cache with a time-to-live, and the computations in progress."""

    def __init__(self, params: MemoParams, epoch: ConfigEpoch) -> None:
        self.params = params
        self._epoch = epoch
        self._entries: OrderedDict[str, tuple[float, int, Any]] = OrderedDict()
        self._flights: dict[tuple[int | None, str], Flight] = {}
        #: How long a failure is remembered (an attribute so that tests need not wait).
        self.failure_ttl = FAILURE_TTL
        register_memory_cache(self)  # emptied when memory runs out, as KumoMTA's

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[bool, Any]:
        """``(True, value)`` for a live entry — a :class:`Failure` when the computation
        failed (see :meth:`value`) — else ``(False, None)``."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, epoch, value = entry
        stale = self.params.invalidate_with_epoch and epoch != self._epoch.value
        if stale or time.monotonic() >= expires:
            if not self.params.allow_stale_reads:  # else kept for a waiter that times out
                del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: str, value: Any, epoch: int) -> None:
        if callable(value) or (isinstance(value, list) and any(map(callable, value))):
            raise ConfigError(f"kumo.memoize '{self.params.name}': a function result cannot "
                              "be cached")
        self._insert(key, epoch, value, self.params.ttl)

    def put_failure(self, key: str, epoch: int, error: BaseException) -> None:
        """Remember that computing ``key`` failed with ``error``, for ``failure_ttl``.
        A copy without its traceback is kept: the cache holds no frames alive."""
        self._insert(key, epoch, Failure(fresh_error(error)), self.failure_ttl)

    def _insert(self, key: str, epoch: int, value: Any, ttl: float) -> None:
        self._entries[key] = (time.monotonic() + ttl, epoch, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.params.capacity:
            self._entries.popitem(last=False)

    @staticmethod
    def value(found: Any) -> Any:
        """A value :meth:`get` found, or the remembered failure's error raised."""
        if isinstance(found, Failure):
            raise found.fresh()
        return found

    def clear(self) -> None:
        self._entries.clear()

    # ------------------------------------------------------------------ single flight
    def _flight_key(self, key: str, epoch: int) -> tuple[int | None, str]:
        # With invalidate_with_epoch, a computation begun before an epoch bump must not
        # answer a caller that came after it (KumoMTA puts the epoch in such keys).
        return (epoch if self.params.invalidate_with_epoch else None, key)

    def begin(self, key: str, epoch: int) -> Hit | Claim | Wait:
        """A call's turn: the cached value, a computation to join, or its own to run."""
        hit, value = self.get(key)
        if hit:
            return Hit(self.value(value))
        flight = self._flights.get(self._flight_key(key, epoch))
        if flight is not None and flight.joinable():
            return Wait(flight)
        if flight is not None:  # computing for longer than populate_timeout
            self.finish(flight, ABANDONED)
        flight = Flight(key, epoch, self.params.populate_timeout)
        self._flights[self._flight_key(key, epoch)] = flight
        return Claim(flight)

    def finish(self, flight: Flight, outcome: Outcome) -> None:
        """End ``flight``: its waiters get ``outcome``, the next caller starts afresh.
        Nothing happens to a flight that already ended."""
        flight.settle(outcome)
        flight_key = self._flight_key(flight.key, flight.epoch)
        if self._flights.get(flight_key) is flight:
            del self._flights[flight_key]

    def complete(self, flight: Flight, value: Any) -> None:
        """Cache the value ``flight`` computed, then hand it to its waiters."""
        self.put(flight.key, value, flight.epoch)
        self.finish(flight, Outcome(value=value))

    def fail(self, flight: Flight, error: BaseException) -> None:
        """``flight``'s computation failed with ``error``: remember it, tell the waiters."""
        self.put_failure(flight.key, flight.epoch, error)
        self.finish(flight, Outcome(error=error))

    async def compute(self, flight: Flight, work: Awaitable[Any]) -> Any:
        """Await ``work``, this caller's computation for ``flight``, and end the flight
        with its value or its failure (abandoned if this caller is cancelled)."""
        try:
            value = await work
            self.complete(flight, value)
        except Exception as exc:
            self.fail(flight, exc)
            raise
        finally:
            self.finish(flight, ABANDONED)
        return value

    async def wait(self, flight: Flight) -> Hit | Claim:
        """Wait for another caller's computation: its value, or this caller's turn to
        compute when that one was given up (or, with ``retry_on_populate_timeout``, ran
        longer than ``populate_timeout``). Raises its error, or a timeout error."""
        waits = WAITS_WITH_RETRY if self.params.retry_on_populate_timeout else 1
        deadline = time.monotonic() + self.params.populate_timeout
        while True:
            outcome = await flight.wait(deadline - time.monotonic())
            if outcome is None:
                stale = self._stale(flight.key)
                if stale is not None:
                    return stale
                waits -= 1
                if waits == 0:
                    raise self._timeout_error()
                if flight.deadline <= deadline:  # it began before this wait: presumed stuck
                    self.finish(flight, ABANDONED)
                deadline = time.monotonic() + self.params.populate_timeout
            elif outcome.error is not None:
                raise fresh_error(outcome.error)
            elif not outcome.abandoned:
                return Hit(outcome.value)
            turn = self.begin(flight.key, flight.epoch)
            if not isinstance(turn, Wait):
                return turn
            flight = turn.flight

    def _stale(self, key: str) -> Hit | None:
        """With ``allow_stale_reads``, the (expired) value a timed-out waiter may have."""
        entry = self._entries.get(key)
        if entry is None or not self.params.allow_stale_reads or isinstance(entry[2], Failure):
            return None
        return Hit(entry[2])

    def _timeout_error(self) -> ConfigError:
        return ConfigError(f"kumo.memoize '{self.params.name}': another call has been "
                           f"computing this value for longer than populate_timeout "
                           f"({self.params.populate_timeout:g}s)")


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
        turn = cache.begin(cache_key(args), self.epoch.value)
        if isinstance(turn, Wait):
            return self._lua_wait(cache, turn.flight)
        return _lua_turn(cache, turn)

    async def _lua_wait(self, cache: MemoCache, flight: Flight) -> dict[str, Any]:
        return _lua_turn(cache, await cache.wait(flight))

    def store(self, name: str, flight: Flight, n: int, *values: Any) -> dict[int, Any]:
        """Cache a Lua function's ``n`` results; returns them for Lua to hand out a copy."""
        results = list(values[:n]) + [None] * (n - len(values))
        self.caches[name].complete(flight, results)
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
                turn = cache.begin(cache_key(args), self.epoch.value)
                if isinstance(turn, Wait):
                    turn = await cache.wait(turn.flight)
                if isinstance(turn, Claim):
                    work = _populate(cache.params, fn, args)
                    return copy.deepcopy(await cache.compute(turn.flight, work))
                return copy.deepcopy(turn.value)

            return cached_async

        # A plain function cannot be interleaved with another call: nothing to wait for.
        @functools.wraps(fn)
        def cached(*args: Any) -> Any:
            key, epoch = cache_key(args), self.epoch.value
            hit, value = cache.get(key)
            if hit:
                return copy.deepcopy(cache.value(value))
            try:
                value = fn(*args)
            except Exception as exc:
                cache.put_failure(key, epoch, exc)
                raise
            cache.put(key, value, epoch)
            return copy.deepcopy(value)

        return cached


def _lua_turn(cache: MemoCache, turn: Hit | Claim) -> dict[str, Any]:
    """The table :meth:`MemoRegistry.lookup` answers Lua with."""
    if isinstance(turn, Hit):
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
                raise ConfigError(f"kumo.memoize '{params.name}': populating took longer than "
                                  f"populate_timeout ({params.populate_timeout:g}s)") from None
    raise AssertionError("unreachable")  # pragma: no cover
