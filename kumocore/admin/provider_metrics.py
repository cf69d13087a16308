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

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.metrics_core import Metric

from kumocore.admin.series_cap import capped
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
        yield _family(name, "counter", ("provider",), counts.by_provider[outcome], cap, other)
        yield _family(f"{name}_and_source", "counter", ("provider", "source", "pool"),
                      counts.by_provider_and_source[outcome], cap, other)  # fmt: skip
    connections: dict[str, int] = {}
    for path in paths:
        if path.connections:
            provider = provider_of(path)
            connections[provider] = connections.get(provider, 0) + path.connections
    yield _family("connection_count_by_provider", "gauge", ("provider",), connections, cap,
                  other)  # fmt: skip


def _family(
    name: str, kind: str, labels: tuple[str, ...], values: Mapping[Any, int], cap: int,
    other: str,
) -> Metric:
    """One family; a key is the label value, or a tuple of them for several labels."""
    metric = Metric(name, HELP[name], kind)
    other_key: str | tuple[str, ...] = other if len(labels) == 1 else (other,) * len(labels)
    for key, value in capped(values, cap, other_key, by_value=kind == "gauge"):
        label_values = key if isinstance(key, tuple) else (key,)
        metric.add_sample(name, dict(zip(labels, label_values, strict=True)), value)
    return metric
