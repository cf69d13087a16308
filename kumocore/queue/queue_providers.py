"""Messages waiting in the scheduled queues by provider and by provider and pool: the
scheduled part of KumoMTA's ``queued_count_by_provider`` and
``queued_count_by_provider_and_pool`` gauges (the ready part is read from the egress
paths at each scrape, :mod:`kumocore.admin.provider_metrics`).

A scheduled queue's provider is, as in KumoMTA, its config's ``provider_name``, else its
site: the MX site name of its destination (``mx_list:...`` for an explicit ``mx_list``,
the destination itself for a protocol without MX), or ``NXDOMAIN:<domain>`` /
``DNSFAIL:<domain>`` when the MX lookup failed. Its pool is its config's ``egress_pool``
(``unspecified`` without one).

KumoMTA resolves the site when it creates the queue. kumocore learns it when routing
finds a path for one of the queue's messages, and for a queue whose messages wait before
any was routed (loaded from the spool, scheduled for later, suspended) from a background
lookup (:class:`SiteLookups`). Until then the queue counts under its destination domain.

Each queue's ``waiting`` is counted under one key (``counted_as``), so the gauges always
sum to ``scheduled_count_total``. A learned site moves the queue's count at once; a
config that names another provider or pool moves it at the queue's next change (a
message entering or leaving its scheduler), so that inserting a message, which refreshes
the config, costs nothing more.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import structlog

from kumocore.config.protocols import site_without_mx
from kumocore.dns.errors import DnsError

if TYPE_CHECKING:
    from kumocore.dns.mx import MailExchanger
    from kumocore.queue.schedule import ScheduledQueue

__all__ = ["SITE_LOOKUP_WORKERS", "QueuedByProvider", "SiteLookups", "add_count",
           "provider_key", "site_of"]  # fmt: skip

log = structlog.get_logger("kumocore.queue")

K = TypeVar("K")

#: Background site lookups in flight at once (each also takes a slot of the resolver's
#: MX concurrency limit, so they never crowd out routing's lookups by much).
SITE_LOOKUP_WORKERS = 2

#: At most this many background lookups start per second. A restart with 100,000 queues
#: labels them all in about 17 minutes (counted under their domains meanwhile, and routing
#: learns each site anyway on the queue's next attempt) instead of spending seconds of
#: the event loop on DNS at once: unpaced, 6,000 lookups held the loop for 6.4 s.
SITE_LOOKUPS_PER_SECOND = 100.0


def provider_key(queue: ScheduledQueue) -> tuple[str, str]:
    """``(provider, pool)`` of ``queue`` as the gauges label it now."""
    config = queue.config
    provider = config.provider_name or queue.site
    if provider is None:
        parts = queue.parts
        provider = parts.routing_domain or parts.domain
    return provider, config.egress_pool or "unspecified"


class QueuedByProvider:
    """The running totals; :meth:`change` is called before ``queue.waiting`` changes."""

    __slots__ = ("by_provider", "by_provider_and_pool")

    def __init__(self) -> None:
        self.by_provider: dict[str, int] = {}
        self.by_provider_and_pool: dict[tuple[str, str], int] = {}

    def change(self, queue: ScheduledQueue, delta: int) -> None:
        """``delta`` messages enter (+) or leave (-) the scheduler in ``queue``."""
        key = provider_key(queue)
        if queue.counted_as != key:
            self._move(queue, key)
        self._bump(key, delta)

    def relabel(self, queue: ScheduledQueue) -> None:
        """Move ``queue``'s waiting messages to the key it has now, if that changed."""
        key = provider_key(queue)
        if queue.counted_as != key:
            self._move(queue, key)

    def learn_site(self, queue: ScheduledQueue, site: str) -> None:
        """``queue``'s destination site is ``site`` (from routing or a lookup)."""
        if queue.site != site:
            queue.site = site
            self.relabel(queue)

    def _move(self, queue: ScheduledQueue, key: tuple[str, str]) -> None:
        old, queue.counted_as = queue.counted_as, key
        if old is not None and queue.waiting:
            self._bump(old, -queue.waiting)
            self._bump(key, queue.waiting)

    def _bump(self, key: tuple[str, str], delta: int) -> None:
        add_count(self.by_provider, key[0], delta)
        add_count(self.by_provider_and_pool, key, delta)


def add_count(counts: dict[K, int], key: K, delta: int) -> None:
    """Add ``delta`` to ``counts[key]``; a count that reaches zero is removed."""
    value = counts.get(key, 0) + delta
    if value:
        counts[key] = value
    else:  # a series at zero goes, so one-off destinations do not pile up
        counts.pop(key, None)


async def site_of(
    queue: ScheduledQueue, lookup_mx: Callable[[str], Awaitable[MailExchanger]]
) -> str:
    """KumoMTA's site name of ``queue``'s destination (its routing domain, else domain)."""
    parts = queue.parts
    domain = parts.routing_domain or parts.domain
    site = site_without_mx(queue.config.protocol, domain)
    if site is not None:
        return site
    try:
        mx = await lookup_mx(domain)
    except DnsError as exc:
        return f"{'DNSFAIL' if exc.transient else 'NXDOMAIN'}:{domain}"
    return mx.site_name or domain  # a null MX has no site: its domain names it


class SiteLookups:
    """Learns the site of scheduled queues that have waiting messages and no site yet:
    each such queue is looked up once, by at most :data:`SITE_LOOKUP_WORKERS` tasks, at
    most :data:`SITE_LOOKUPS_PER_SECOND` a second."""

    def __init__(
        self,
        lookup_mx: Callable[[str], Awaitable[MailExchanger]],
        learned: Callable[[ScheduledQueue, str], None],
        workers: int = SITE_LOOKUP_WORKERS,
        per_second: float = SITE_LOOKUPS_PER_SECOND,
    ) -> None:
        self._lookup_mx = lookup_mx
        self._learned = learned
        self._workers = workers
        #: Each worker waits this long after each lookup (the workers together keep the rate).
        self._pause = workers / per_second
        self._pending: collections.deque[ScheduledQueue] = collections.deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def want(self, queue: ScheduledQueue) -> None:
        """Look ``queue``'s site up, unless it is known, pending or not needed."""
        if queue.site is not None or queue.site_pending or queue.config.provider_name:
            return
        queue.site_pending = True
        self._pending.append(queue)
        self._wakeup.set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._tasks = [loop.create_task(self._work(), name=f"site-lookup-{n}")
                       for n in range(self._workers)]  # fmt: skip

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        pending = self._pending
        while True:
            if not pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            queue = pending.popleft()
            try:
                if queue.site is None:  # routing may have learned it meanwhile
                    site = await site_of(queue, self._lookup_mx)
                    if queue.site is None:
                        self._learned(queue, site)
            except Exception as exc:  # a lookup bug must not end the worker
                log.warning("site lookup failed", queue=queue.name, error=str(exc))
            finally:
                queue.site_pending = False
            await asyncio.sleep(self._pause)
