"""KumoMTA's scheduled-queue aggregates for ``/metrics``: ``scheduled_count_total``,
``scheduled_by_domain``, ``scheduled_by_tenant`` and ``scheduled_by_tenant_campaign``.

They sum the per-queue ``scheduled_count`` over the components of each queue's name
(``campaign:tenant@domain!routing_domain``), so KumoMTA dashboards that chart a tenant's
or a destination's backlog work unchanged. Summed at scrape time from the counts the
queue manager keeps: nothing is counted twice. A queue without a tenant counts in no
tenant series, one without a campaign in no campaign series, as in KumoMTA; the domain
is the destination's, not the routing domain.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import Metric

from kumocore.mail.queue_name import QueueNameParts, parse_queue_name

__all__ = ["HELP", "scheduled_aggregates"]

HELP = {
    "scheduled_count_total": "Messages across all scheduled queues.",
    "scheduled_by_domain": "Messages in the scheduled queues of each destination domain.",
    "scheduled_by_tenant": "Messages in the scheduled queues of each tenant.",
    "scheduled_by_tenant_campaign": "Messages in the scheduled queues of each tenant "
    "and campaign.",
}

# A scrape walks every queue: their names are parsed once (bounded for a flood of them).
_parts = functools.lru_cache(maxsize=65_536)(parse_queue_name)


def scheduled_aggregates(
    counts: Mapping[str, int], cap: int, other: str
) -> Iterator[Metric]:
    """The four gauges from ``{queue name: messages waiting}``; each labelled gauge keeps
    its ``cap`` largest series and sums the rest under ``other``."""
    by_domain: Counter[str] = Counter()
    by_tenant: Counter[str] = Counter()
    by_campaign: Counter[tuple[str, ...]] = Counter()
    for name, waiting in counts.items():
        parts: QueueNameParts = _parts(name)
        by_domain[parts.domain] += waiting
        if parts.tenant is not None:
            by_tenant[parts.tenant] += waiting
        if parts.campaign is not None:
            by_campaign[parts.tenant or "", parts.campaign] += waiting
    total = Metric("scheduled_count_total", HELP["scheduled_count_total"], "gauge")
    total.add_sample("scheduled_count_total", {}, sum(counts.values()))
    yield total
    yield _gauge("scheduled_by_domain", ("domain",), {(d,): n for d, n in by_domain.items()},
                 cap, other)  # fmt: skip
    yield _gauge("scheduled_by_tenant", ("tenant",), {(t,): n for t, n in by_tenant.items()},
                 cap, other)  # fmt: skip
    yield _gauge("scheduled_by_tenant_campaign", ("tenant", "campaign"), by_campaign, cap,
                 other)  # fmt: skip


def _gauge(
    name: str, labels: tuple[str, ...], values: Mapping[tuple[str, ...], int], cap: int,
    other: str,
) -> Metric:
    metric = Metric(name, HELP[name], "gauge")
    ranked = sorted(values.items(), key=lambda item: -item[1])
    kept, rest = (ranked, []) if len(ranked) <= cap else (ranked[: cap - 1], ranked[cap - 1 :])
    for label_values, value in kept:
        metric.add_sample(name, dict(zip(labels, label_values, strict=True)), value)
    if rest:
        metric.add_sample(name, dict.fromkeys(labels, other), sum(v for _, v in rest))
    return metric
