"""Messages waiting in the scheduled queues, summed by destination domain, tenant and
tenant and campaign: KumoMTA's ``scheduled_by_*`` gauges (and, through
:mod:`kumocore.queue.queue_providers`, by provider and pool).

Kept as the queue manager counts each queue's ``waiting`` (a message entering or leaving
the scheduler), so a scrape reads a few small maps instead of walking every scheduled
queue: summing 100,000 queues at each scrape stalled the event loop 65 ms. The cost
moves to the messages that wait: three dict updates as each enters or leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumocore.queue.queue_providers import QueuedByProvider, add_count

if TYPE_CHECKING:
    from kumocore.queue.schedule import ScheduledQueue



class ScheduledTotals:
    """Waiting messages of all scheduled queues: in all, and by the parts of their names
    (a queue without a tenant counts in no tenant, one without a campaign in no campaign;
    the domain is the destination's, not the routing domain)."""

    __slots__ = ("by_campaign", "by_domain", "by_tenant", "providers", "total")

    def __init__(self) -> None:
        self.total = 0
        #: By provider, and by provider and pool (:mod:`kumocore.queue.queue_providers`).
        self.providers = QueuedByProvider()
        self.by_domain: dict[str, int] = {}
        self.by_tenant: dict[str, int] = {}
        #: Keyed ``(tenant or "", campaign)``.
        self.by_campaign: dict[tuple[str, str], int] = {}

    def change(self, queue: ScheduledQueue, delta: int) -> None:
        """``delta`` messages entered (+) or left (-) the scheduler in ``queue``."""
        self.providers.change(queue, delta)  # before waiting changes: it may move it
        queue.waiting += delta
        self.total += delta
        parts = queue.parts
        add_count(self.by_domain, parts.domain, delta)
        if parts.tenant is not None:
            add_count(self.by_tenant, parts.tenant, delta)
        if parts.campaign is not None:
            add_count(self.by_campaign, (parts.tenant or "", parts.campaign), delta)
