"""KumoMTA's per-provider metrics for ``/metrics``: the delivery outcome counters
``total_messages_{delivered,transfail,fail}_by_provider`` and
``..._by_provider_and_source`` (kept by :mod:`kumocore.queue.provider_counts`); the
``connection_count_by_provider`` and ``connection_count_by_provider_and_pool`` gauges,
read from the egress paths at each scrape; and ``queued_count_by_provider`` and
``queued_count_by_provider_and_pool``: the messages of the ready queues (read from the
paths) plus those waiting in the scheduled queues (the running totals of
:mod:`kumocore.queue.queue_providers`).

A path's pool label is the pool of the scheduled queue whose message opened it, as
KumoMTA labels a ready queue; a path no routed message opened yet is ``unspecified``.

Dashboards built on KumoMTA's provider view (``kcli provider-summary`` reads these
names) chart a kumocore node the same way. Each family keeps its ``cap`` largest (gauge)
or first (counter) series and sums the rest under ``other``, as every labelled metric
here does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kumocore.admin.series_cap import Families, capped_series, chunks
from kumocore.queue.provider_counts import ProviderCounts, provider_of
from kumocore.queue.queue_providers import QueuedByProvider

__all__ = ["HELP", "provider_metrics"]

_OUTCOME_HELP = {
    "delivered": "total number of messages ever delivered",
    "transfail": "total number of message delivery attempts that transiently failed",
    "fail": "total number of message delivery attempts that permanently failed",
}
HELP = {
    **{f"total_messages_{outcome}_by_provider": text
       for outcome, text in _OUTCOME_HELP.items()},
    **{f"total_messages_{outcome}_by_provider_and_source": text
       for outcome, text in _OUTCOME_HELP.items()},
    "connection_count_by_provider": "number of active connections",
    "connection_count_by_provider_and_pool": "number of active connections",
    "queued_count_by_provider": "number of messages in the scheduled and ready queue",
    "queued_count_by_provider_and_pool": "number of messages in the scheduled and ready "
    "queue",
}


def provider_metrics(
    counts: ProviderCounts, scheduled: QueuedByProvider, paths: Iterable[Any], cap: int,
    other: str,
) -> Families:
    """The ten families; ``paths`` are the node's egress paths (``connections``,
    ``len()``, ``pool``, ``config.provider_name``, ``key``)."""
    for outcome in _OUTCOME_HELP:
        name = f"total_messages_{outcome}_by_provider"
        yield from capped_series(name, HELP[name], "counter", ("provider",),
                                 counts.by_provider[outcome], cap, other)  # fmt: skip
        name += "_and_source"
        yield from capped_series(name, HELP[name], "counter", ("provider", "source", "pool"),
                                 counts.by_provider_and_source[outcome], cap,
                                 other)  # fmt: skip
    connections: dict[str, int] = {}
    connections_by_pool: dict[tuple[str, str], int] = {}
    queued = dict(scheduled.by_provider)
    queued_by_pool = dict(scheduled.by_provider_and_pool)
    for some in chunks(paths):  # 100,000 paths: a step between chunks
        for path in some:
            ready, open_now = len(path), path.connections
            if not (ready or open_now):
                continue
            provider = provider_of(path)
            key = (provider, path.pool or "unspecified")
            if open_now:
                connections[provider] = connections.get(provider, 0) + open_now
                connections_by_pool[key] = connections_by_pool.get(key, 0) + open_now
            if ready:
                queued[provider] = queued.get(provider, 0) + ready
                queued_by_pool[key] = queued_by_pool.get(key, 0) + ready
        yield None
    for name, values in (("connection_count_by_provider", connections),
                         ("queued_count_by_provider", queued)):  # fmt: skip
        yield from capped_series(name, HELP[name], "gauge", ("provider",), values, cap, other)
    for name, by_pool in (("connection_count_by_provider_and_pool", connections_by_pool),
                          ("queued_count_by_provider_and_pool", queued_by_pool)):  # fmt: skip
        yield from capped_series(name, HELP[name], "gauge", ("provider", "pool"), by_pool,
                                 cap, other)  # fmt: skip
