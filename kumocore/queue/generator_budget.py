"""How much queued-request expansion one node runs at once, whatever its connection_limit.

The generator queue (:mod:`kumocore.queue.generator_inject`) expands as many requests at
once as its egress path's ``connection_limit`` (32 by default, as KumoMTA). Each request
being expanded holds its decoded recipients in memory (about 27 MiB for a 2 MB request of
80,000 recipients) and takes one turn of the event loop per chunk of messages it
generates, so every other client of the node waits for one chunk of each of them: 40
requests of 2 MB expanding at once took 952 MiB and made an SMTP client's EHLO wait
177 ms typically and 1.5 s at worst.

:class:`ExpansionBudget` holds the connections beyond :data:`MAX_REQUESTS` requests or
:data:`MAX_BYTES` of request JSON being expanded until earlier ones are done, in the
order they asked (one request larger than the whole budget still runs, alone). The
waiting requests' bodies stay in the spool: the budget is taken before they are read.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["MAX_BYTES", "MAX_REQUESTS", "ExpansionBudget"]

#: Request bytes (the queued JSON) being expanded at once: two requests at the HTTP
#: listener's default ``request_body_limit`` (2 MiB).
MAX_BYTES = 4 * 1024 * 1024
#: Requests being expanded at once, however small: each adds a chunk to every turn of
#: the loop that other clients wait out.
MAX_REQUESTS = 4


class ExpansionBudget:
    """Admits requests to be expanded, first come first served, within the limits."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_requests: int = MAX_REQUESTS) -> None:
        self.max_bytes = max_bytes
        self.max_requests = max_requests
        #: Bytes and requests being expanded now.
        self.bytes = 0
        self.requests = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @asynccontextmanager
    async def admitted(self, size: int) -> AsyncIterator[None]:
        """Until a request of ``size`` bytes fits (its turn come), then while it runs."""
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
