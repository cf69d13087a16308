"""One named cache of ``kumo.memoize``: its parameters and its entries.

:class:`MemoParams` is the checked parameter table; :class:`MemoCache` keeps the entries
(least recently used first out, each with its time-to-live and configuration epoch,
failures remembered) and the computations in progress, so that callers of a missing key
share one (single flight). The semantics, KumoMTA's, are listed in
:mod:`kumocore_lua_policy.stdlib.memo`, whose registry makes and finds these caches.

Each cache counts what KumoMTA's memoize caches count, under its name
(``kumocore.cache_stats``, exported as ``lruttl_*{cache_name=<name>}`` in ``/metrics``):
lookups that hit or missed (a remembered failure is a miss), expiries, evictions,
computations started and failed, waiters (a gauge), waits that timed out (an error, or
stale when the expired value answered them). The per-call ``memoize_cache_*`` counts are
kept where the calls are made (:mod:`kumocore_lua_policy.stdlib.memo`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from kumocore import ConfigError, cache_stats, register_memory_cache
from kumocore.config.duration import duration_seconds
from kumocore_lua_policy.stdlib.epoch import ConfigEpoch
from kumocore_lua_policy.stdlib.memo_failure import FAILURE_TTL, Failure, fresh_error
from kumocore_lua_policy.stdlib.memo_flight import (
    ABANDONED,
    WAITS_WITH_RETRY,
    Claim,
    Flight,
    Hit,
    Outcome,
    Wait,
)

_KNOWN = frozenset(
    {
        "name",
        "ttl",
        "capacity",
        "invalidate_with_epoch",
        "populate_timeout",
        "retry_on_populate_timeout",
        "allow_stale_reads",
    }
)


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
            raise ConfigError(
                "kumo.memoize(fn, { name = ..., ttl = ..., capacity = ... }): "
                "the second argument must be a table"
            )
        unknown = sorted(set(params) - _KNOWN)
        if unknown:
            raise ConfigError(
                f"kumo.memoize: unknown parameter(s) {', '.join(map(str, unknown))}"
                f"; known: {', '.join(sorted(_KNOWN))}"
            )
        for required in ("name", "ttl", "capacity"):
            if params.get(required) is None:
                raise ConfigError(f"kumo.memoize: the '{required}' parameter is required")
        name, capacity = params["name"], params["capacity"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"kumo.memoize: 'name' must be a non-empty string, got {name!r}")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ConfigError(
                f"kumo.memoize: 'capacity' must be a positive integer, got {capacity!r}"
            )
        try:
            ttl = duration_seconds(params["ttl"])
            timeout = duration_seconds(params.get("populate_timeout", 120))
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"kumo.memoize '{name}': {exc}") from None
        stale_ok = bool(params.get("allow_stale_reads", False))
        epoch = bool(params.get("invalidate_with_epoch", False)) and not stale_ok
        retry = bool(params.get("retry_on_populate_timeout", False))
        return cls(name, ttl, capacity, epoch, timeout, retry, stale_ok)


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
        self.stats = cache_stats(params.name, memoize=True)
        self.stats.track(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[bool, Any]:
        """``(True, value)`` for a live entry — a :class:`Failure` when the computation
        failed (see :meth:`value`) — else ``(False, None)``."""
        stats = self.stats
        entry = self._entries.get(key)
        if entry is None:
            stats.misses += 1
            return False, None
        expires, epoch, value = entry
        stale = self.params.invalidate_with_epoch and epoch != self._epoch.value
        if stale or time.monotonic() >= expires:
            stats.misses += 1
            if not self.params.allow_stale_reads:  # else kept for a waiter that times out
                del self._entries[key]
                stats.expirations += 1
            return False, None
        self._entries.move_to_end(key)
        if isinstance(value, Failure):
            stats.misses += 1  # KumoMTA's lookup counts a failed entry as a miss
        else:
            stats.hits += 1
        return True, value

    def put(self, key: str, value: Any, epoch: int) -> None:
        if callable(value) or (isinstance(value, list) and any(map(callable, value))):
            raise ConfigError(
                f"kumo.memoize '{self.params.name}': a function result cannot be cached"
            )
        self._insert(key, epoch, value, self.params.ttl)

    def put_failure(self, key: str, epoch: int, error: BaseException) -> None:
        """Remember that computing ``key`` failed with ``error``, for ``failure_ttl``.
        A copy without its traceback is kept: the cache holds no frames alive."""
        self.stats.errors += 1
        self._insert(key, epoch, Failure(fresh_error(error)), self.failure_ttl)

    def _insert(self, key: str, epoch: int, value: Any, ttl: float) -> None:
        self._entries[key] = (time.monotonic() + ttl, epoch, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.params.capacity:
            self._entries.popitem(last=False)
            self.stats.evictions += 1

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
        self.stats.populated += 1  # the caller computes it now
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
        self.stats.waiting += 1
        try:
            return await self._wait(flight)
        finally:
            self.stats.waiting -= 1

    async def _wait(self, flight: Flight) -> Hit | Claim:
        waits = WAITS_WITH_RETRY if self.params.retry_on_populate_timeout else 1
        deadline = time.monotonic() + self.params.populate_timeout
        while True:
            outcome = await flight.wait(deadline - time.monotonic())
            if outcome is None:
                stale = self._stale(flight.key)
                if stale is not None:
                    self.stats.stale += 1
                    return stale
                self.stats.errors += 1  # as KumoMTA counts a wait that timed out
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
        return ConfigError(
            f"kumo.memoize '{self.params.name}': another call has been "
            f"computing this value for longer than populate_timeout "
            f"({self.params.populate_timeout:g}s)"
        )
