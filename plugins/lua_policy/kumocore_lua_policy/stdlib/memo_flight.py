"""Single flight for ``kumo.memoize``: one caller computes a missing key, the others wait.

A burst of messages asking a memoized function for the same key must not become a burst of
identical DNS or HTTP queries. :class:`Flight` is one computation in progress; the cache
(:mod:`kumocore_lua_policy.stdlib.memo_cache`) hands each caller a :class:`Hit`, a :class:`Claim`
(compute, then settle the flight) or a :class:`Wait` (wait for the flight's outcome).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

#: How many times a waiter waits ``populate_timeout`` with ``retry_on_populate_timeout``
#: (KumoMTA makes three attempts).
WAITS_WITH_RETRY = 3


@dataclass(frozen=True)
class Outcome:
    """How a computation ended, as the callers waiting for it learn it."""

    value: Any = None
    #: What it failed with (a Lua error value is made an exception first, see
    #: memo_failure.failure_error). None: it did not.
    error: BaseException | None = None
    #: Given up (its caller was stopped, or presumed stuck): the waiters look again.
    abandoned: bool = False


ABANDONED = Outcome(abandoned=True)


class Flight:
    """One computation of a key in progress: its caller computes, later callers wait."""

    __slots__ = ("_woken", "deadline", "epoch", "key", "outcome")

    def __init__(self, key: str, epoch: int, timeout: float) -> None:
        self.key, self.epoch = key, epoch
        self.outcome: Outcome | None = None
        # Made by the first waiter, so that claiming a key needs no event loop.
        self._woken: asyncio.Future[None] | None = None
        # Past this the computing caller is presumed stuck and the next caller computes
        # instead (as in KumoMTA): a handler lost mid-computation cannot hold a key forever.
        self.deadline = time.monotonic() + timeout

    def joinable(self) -> bool:
        return self.outcome is None and time.monotonic() < self.deadline

    def settle(self, outcome: Outcome) -> None:
        """Record the first outcome and wake the waiters; later ones change nothing."""
        if self.outcome is None:
            self.outcome = outcome
            if self._woken is not None and not self._woken.done():
                self._woken.set_result(None)

    async def wait(self, timeout: float) -> Outcome | None:
        """The outcome, or None if there is none within ``timeout`` seconds."""
        if self.outcome is None and timeout > 0:
            loop = asyncio.get_running_loop()
            if self._woken is None or self._woken.get_loop() is not loop:
                self._woken = loop.create_future()
            # asyncio.wait, not wait_for: a waiter giving up must not cancel the future
            # the other waiters share.
            await asyncio.wait((self._woken,), timeout=timeout)
        return self.outcome


@dataclass(frozen=True)
class Hit:
    """The value is known: cached, or computed by the caller this one waited for."""

    value: Any


@dataclass(frozen=True)
class Claim:
    """This caller computes the value, then ends ``flight`` (MemoCache.complete/finish)."""

    flight: Flight


@dataclass(frozen=True)
class Wait:
    """Another caller is computing the value: wait for ``flight`` (MemoCache.wait)."""

    flight: Flight
