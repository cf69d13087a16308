"""KumoMTA's scheduled-queue aggregates for ``/metrics``: ``scheduled_count_total``,
``scheduled_by_domain``, ``scheduled_by_tenant`` and ``scheduled_by_tenant_campaign``.

They sum the per-queue ``scheduled_count`` over the components of each queue's name
(``campaign:tenant@domain!routing_domain``), so KumoMTA dashboards that chart a tenant's
or a destination's backlog work unchanged. The sums are the queue manager's running
totals (:mod:`kumocore.queue.scheduled_totals`): nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client.metrics_core import Metric

from kumocore.admin.series_cap import Families, capped_series
from kumocore.queue.scheduled_totals import ScheduledTotals

__all__ = ["HELP", "scheduled_aggregates"]

HELP = {
    "scheduled_count_total": "Messages across all scheduled queues.",
    "scheduled_by_domain": "Messages in the scheduled queues of each destination domain.",
    "scheduled_by_tenant": "Messages in the scheduled queues of each tenant.",
    "scheduled_by_tenant_campaign": "Messages in the scheduled queues of each tenant "
    "and campaign.",
}


def scheduled_aggregates(totals: ScheduledTotals, cap: int, other: str) -> Families:
    """The four gauges from the manager's running totals; each labelled gauge keeps its
    ``cap`` largest series and sums the rest under ``other``."""
    metric = Metric("scheduled_count_total", HELP["scheduled_count_total"], "gauge")
    metric.add_sample("scheduled_count_total", {}, totals.total)
    yield metric
    yield from _gauge("scheduled_by_domain", ("domain",), totals.by_domain, cap, other)
    yield from _gauge("scheduled_by_tenant", ("tenant",), totals.by_tenant, cap, other)
    yield from _gauge("scheduled_by_tenant_campaign", ("tenant", "campaign"), totals.by_campaign,
                 cap, other)  # fmt: skip


def _gauge(
    name: str, labels: tuple[str, ...], values: Mapping[Any, int], cap: int, other: str,
) -> Families:
    return capped_series(name, HELP[name], "gauge", labels, values, cap, other)
