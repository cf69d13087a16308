"""The cap on a labelled metric's series: at most ``cap`` of them, the rest summed into
one labelled ``other``, so a flood of one-off domains cannot blow up Prometheus.

Gauges keep the largest values (what an operator looks for). Counters keep the first
labels in insertion order instead: that set never changes once the cap is reached, so
``other`` only ever grows and rate() sees no false counter resets.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Mapping
from operator import itemgetter
from typing import Any, TypeVar

from prometheus_client.metrics_core import Metric

__all__ = ["capped", "capped_family", "single_family"]

K = TypeVar("K", bound=Hashable)


def capped(
    values: Mapping[K, float], cap: int, other: K, *, by_value: bool
) -> list[tuple[K, float]]:
    """At most ``cap`` (key, value) pairs, the remainder summed under ``other`` (a key
    that is itself kept absorbs them)."""
    items = list(values.items())
    if len(items) <= cap:
        return items
    # nlargest, not a sort: a scrape may rank 100,000 domains to keep 499 of them.
    kept = heapq.nlargest(cap - 1, items, key=itemgetter(1)) if by_value else items[: cap - 1]
    merged = dict(kept)
    rest = sum(value for key, value in items if key not in merged)
    merged[other] = merged.get(other, 0) + rest
    return list(merged.items())


def capped_family(
    name: str, documentation: str, kind: str, labels: tuple[str, ...],
    values: Mapping[Any, float], cap: int, other: str,
) -> Metric:
    """A metric family of ``values`` keyed by its one label's value, or by a tuple of
    ``labels``' values; capped (gauges keep their largest series, counters their first),
    the rest under ``other`` in every label."""
    metric = Metric(name, documentation, kind)
    other_key: str | tuple[str, ...] = other if len(labels) == 1 else (other,) * len(labels)
    for key, value in capped(values, cap, other_key, by_value=kind == "gauge"):
        label_values = key if isinstance(key, tuple) else (key,)
        metric.add_sample(name, dict(zip(labels, label_values, strict=True)), value)
    return metric


def single_family(name: str, documentation: str, kind: str, value: float) -> Metric:
    """A family of one unlabelled series (nothing to cap)."""
    metric = Metric(name, documentation, kind)
    metric.add_sample(name, {}, value)
    return metric
