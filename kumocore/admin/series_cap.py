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
from typing import TypeVar

__all__ = ["capped"]

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
