"""Choosing the egress source for a message: weighted round robin over a pool.

KumoMTA uses the LVS weighted round-robin algorithm: over a cycle each source is chosen in
proportion to its weight, interleaved rather than in runs, and weight 0 disables a source.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from math import gcd


class WeightedRoundRobin:
    """The LVS interleaved weighted round-robin scheduler."""

    def __init__(self, entries: Sequence[tuple[str, int]]) -> None:
        self.entries = [(name, weight) for name, weight in entries if weight > 0]
        weights = [weight for _, weight in self.entries]
        self._gcd = reduce(gcd, weights) if weights else 1
        self._max = max(weights, default=0)
        self._index = -1
        self._current = 0

    def next(self) -> str | None:
        """The next source name, or None when every weight is zero."""
        if not self.entries:
            return None
        count = len(self.entries)
        while True:
            self._index = (self._index + 1) % count
            if self._index == 0:
                self._current -= self._gcd
                if self._current <= 0:
                    self._current = self._max
            name, weight = self.entries[self._index]
            if weight >= self._current:
                return name
