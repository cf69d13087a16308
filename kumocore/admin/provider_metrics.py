"""KumoMTA's per-provider metrics for ``/metrics``: the delivery outcome counters
``total_messages_{delivered,transfail,fail}_by_provider`` and
``..._by_provider_and_source`` (kept by :mod:`kumocore.queue.provider_counts`), and the
``connection_count_by_provider`` gauge, read from the egress paths at each scrape.

Dashboards built on KumoMTA's provider view (``kcli provider-summary`` reads these
names) chart a kumocore node the same way. Each family keeps its ``cap`` largest (gauge)
or first (counter) series and sums the rest under ``other``, as every labelled metric
here does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.metrics_core import Metric

from kumocore.admin.series_cap import capped_family
from kumocore.queue.provider_counts import ProviderCounts, provider_of

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
}


def provider_metrics(
    counts: ProviderCounts, paths: Iterable[Any], cap: int, other: str,
) -> Iterator[Metric]:
    """The seven families; ``paths`` are the node's egress paths (``connections``,
    ``config.provider_name``, ``key``)."""
    for outcome in _OUTCOME_HELP:
        name = f"total_messages_{outcome}_by_provider"
        yield capped_family(name, HELP[name], "counter", ("provider",),
                            counts.by_provider[outcome], cap, other)  # fmt: skip
        name += "_and_source"
        yield capped_family(name, HELP[name], "counter", ("provider", "source", "pool"),
                            counts.by_provider_and_source[outcome], cap, other)  # fmt: skip
    connections: dict[str, int] = {}
    for path in paths:
        if path.connections:
            provider = provider_of(path)
            connections[provider] = connections.get(provider, 0) + path.connections
    name = "connection_count_by_provider"
    yield capped_family(name, HELP[name], "gauge", ("provider",), connections, cap, other)
