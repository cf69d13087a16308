"""Work of known size admitted a little at a time: at most so many pieces, and so many
bytes, under way at once; the others wait their turn, first come first served.

Two kinds of work hold memory in proportion to a request and take the event loop's
time while they run, so a node bounds how many run at once:

* queued ``deferred_generation`` requests being expanded (:mod:`kumocore.queue.
  generator_inject`): 40 requests of 2 MB expanding at once took 952 MiB and made an
  SMTP client's EHLO wait 1.5 s at worst; now its ``EXPANSION_BYTES`` /
  ``EXPANSION_REQUESTS`` (EHLO median 43 -> 9 ms, peak RSS 441 -> 282 MiB);
* large ``/api/inject/v1`` bodies being decoded and checked (:mod:`kumocore.http.
  inject`): thirty 2 MB requests of 80,000 recipients checked at once held 1.2 GiB and
  made an EHLO wait 0.85 s; now its ``CHECK_BYTES`` / ``CHECK_REQUESTS``.

Each user keeps its own limits; this module only admits.

A piece larger than the whole budget still runs, alone. Waiting work keeps nothing but
what it already held (a queued request's body stays in the spool: the budget is taken
before it is read).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["WorkBudget"]


class WorkBudget:
    """Admits work, first come first served, within the limits."""

    def __init__(self, max_bytes: int, max_requests: int) -> None:
        self.max_bytes = max_bytes
        self.max_requests = max_requests
        #: Bytes and pieces of work under way now.
        self.bytes = 0
        self.requests = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @asynccontextmanager
    async def admitted(self, size: int) -> AsyncIterator[None]:
        """Until work of ``size`` bytes fits (its turn come), then while it runs."""
        if self._waiting or not self._fits(size):
            waiter = asyncio.get_running_loop().create_future()
            entry = (size, waiter)
            self._waiting.append(entry)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release(size)  # admitted as it was cancelled: give it back
                else:
                    self._waiting.remove(entry)
                    self._admit_waiting()  # those behind it may fit now
                raise
        else:
            self._take(size)
        try:
            yield
        finally:
            self._release(size)

    def _fits(self, size: int) -> bool:
        if self.requests == 0:
            return True  # alone, even over the budget: it must run some time
        return self.requests < self.max_requests and self.bytes + size <= self.max_bytes

    def _take(self, size: int) -> None:
        self.bytes += size
        self.requests += 1

    def _release(self, size: int) -> None:
        self.bytes -= size
        self.requests -= 1
        self._admit_waiting()

    def _admit_waiting(self) -> None:
        """Admit waiting requests in order while the first of them fits."""
        while self._waiting and self._fits(self._waiting[0][0]):
            size, waiter = self._waiting.popleft()
            self._take(size)
            waiter.set_result(None)
