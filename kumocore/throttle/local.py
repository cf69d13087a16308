"""The in-process throttle store: GCRA over a dict of TATs, and counted connection leases.

This is KumoMTA's "local" behaviour (its in-memory ``redis_cell_impl`` limiter): it is the
default when no shared store is configured, the home of every ``local:`` spec, and what
the Redis store falls back to while Redis is unreachable.

GCRA keeps one number per key, the *theoretical arrival time* (TAT): when the bucket would
be empty again if nothing more arrived. A request of ``quantity`` units pushes the TAT out
by ``quantity * interval``; it is admitted while the TAT stays within ``capacity *
interval`` of now. Time is integer nanoseconds from a monotonic clock, so results are
exact and immune to wall-clock steps.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kumocore.throttle.store import Lease, LeaseLostError, ThrottleResult

if TYPE_CHECKING:
    from kumocore.throttle.spec import ThrottleSpec

_NS = 1_000_000_000
# Sweeping stale TATs is O(n); doing it only when the dict has doubled keeps it amortised
# O(1) per call while bounding memory to about twice the number of live keys.
_PRUNE_MIN = 4096
#: How long after a refused lease its key counts as *wanted*: a holder whose connection
#: sits idle gives its unit back to the waiter (which asks again every 0.5 s).
WANTED_WINDOW_NS = 1 * _NS


class LocalThrottleStore:
    """Throttles and leases held in this process (per node, not shared)."""

    name = "local"

    def __init__(self, *, clock: Callable[[], int] = time.monotonic_ns) -> None:
        """``clock`` returns nanoseconds; tests pass a fake one to step time exactly."""
        self._clock = clock
        self._tats: dict[str, int] = {}
        self._prune_at = _PRUNE_MIN
        self._leases: dict[str, dict[str, int]] = {}
        self._tokens = itertools.count(1)
        # Tokens differ between instances too, so a lease handed to the wrong local store
        # (a caller that releases to every store it has) can never release another's.
        self._token_prefix = f"{os.getpid():x}.{id(self):x}."
        # When a lease was last refused, per key (see lease_wanted).
        self._wanted: dict[str, int] = {}

    # ------------------------------------------------------------------ rate throttles

    async def throttle(self, key: str, spec: ThrottleSpec, quantity: int = 1) -> ThrottleResult:
        return self.throttle_now(key, spec, quantity)

    def throttle_now(self, key: str, spec: ThrottleSpec, quantity: int = 1) -> ThrottleResult:
        """The synchronous core of :meth:`throttle`, for callers on a hot path."""
        if quantity < 0:
            raise ValueError(f"throttle quantity must not be negative, got {quantity}")
        now = self._clock()
        interval = spec.interval_ns
        tolerance = interval * spec.capacity
        increment = interval * quantity
        tats = self._tats
        # How far the TAT is ahead of now; an idle bucket banks no credit beyond capacity.
        ahead = tats.get(key, now) - now
        if ahead < 0:
            ahead = 0
        ttl = ahead + increment
        if ttl > tolerance:
            throttled = True
            # Refused: nothing is charged, so the bucket is as full as before the call.
            retry_after = (ttl - tolerance) / _NS if increment <= tolerance else math.inf
            ttl = ahead
        else:
            throttled = False
            retry_after = 0.0
            if increment:
                tats[key] = now + ttl
                if len(tats) >= self._prune_at:
                    self._prune(now)
        spare = tolerance - ttl
        remaining = spare // interval if spare > 0 else 0
        return ThrottleResult(throttled, remaining, ttl / _NS, retry_after)

    def _prune(self, now: int) -> None:
        """Forget buckets whose TAT has passed: they behave exactly like absent ones."""
        self._tats = {k: tat for k, tat in self._tats.items() if tat > now}
        self._prune_at = max(_PRUNE_MIN, 2 * len(self._tats))

    # ------------------------------------------------------------------ leases

    async def acquire_lease(self, key: str, limit: int, duration: float) -> Lease | None:
        now = self._clock()
        holders = self._leases.get(key)
        if holders is None:
            holders = self._leases[key] = {}
        else:
            _expire(holders, now)
        if len(holders) >= limit:
            if len(self._wanted) >= _PRUNE_MIN:
                self._wanted.clear()
            self._wanted[key] = now
            return None
        self._wanted.pop(key, None)
        token = f"{self._token_prefix}{next(self._tokens)}"
        expires = now + int(duration * _NS)
        holders[token] = expires
        return Lease(key, token, expires / _NS, self.name)

    async def renew_lease(self, lease: Lease, duration: float) -> None:
        now = self._clock()
        holders = self._leases.get(lease.key)
        expires = holders.get(lease.token) if holders else None
        if holders is None or expires is None or expires <= now:
            # Renewing a lapsed lease would resurrect a unit someone else may now hold.
            await self.release_lease(lease)
            raise LeaseLostError(lease)
        expires = now + int(duration * _NS)
        holders[lease.token] = expires
        lease.expires = expires / _NS

    async def release_lease(self, lease: Lease) -> None:
        holders = self._leases.get(lease.key)
        if holders is None:
            return
        holders.pop(lease.token, None)
        if not holders:  # don't keep one empty dict per ready queue ever seen
            del self._leases[lease.key]

    async def lease_wanted(self, key: str) -> bool:
        """Whether someone was refused a unit of ``key`` within the last second: an idle
        holder should then give its unit back (another worker of the node has work)."""
        refused = self._wanted.get(key)
        return refused is not None and self._clock() - refused < WANTED_WINDOW_NS

    def leases_held(self, key: str) -> int:
        """How many unexpired leases ``key`` has (for diagnostics and tests)."""
        holders = self._leases.get(key)
        if not holders:
            return 0
        _expire(holders, self._clock())
        return len(holders)

    async def close(self) -> None:
        self._tats.clear()
        self._leases.clear()
        self._wanted.clear()


def _expire(holders: dict[str, int], now: int) -> None:
    """Drop the leases of ``holders`` whose expiry has passed (a crashed holder's, say)."""
    expired = [token for token, expires in holders.items() if expires <= now]
    for token in expired:
        del holders[token]
