"""Choosing the egress source for a message: weighted round robin over a pool.

KumoMTA uses the LVS weighted round-robin algorithm: over a cycle each source is chosen in
proportion to its weight, interleaved rather than in runs, and weight 0 disables a source.

When a chosen source turns out not to be eligible (its ``source_selection_rate`` is spent,
:mod:`kumocore.queue.source_selection`), the next candidate comes from the same rotation
with that source left out, as KumoMTA's ``select_and_insert`` does: the weights, the
greatest common divisor and the largest weight are those of the remaining sources, the
position in the rotation is shared, and a single remaining source is taken without moving
the rotation on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
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

    def next(self, excluded: Collection[str] = ()) -> str | None:
        """The next source name not in ``excluded``, or None when there is none (every
        weight is zero, or every source is excluded)."""
        entries, divisor, top = self.entries, self._gcd, self._max
        if excluded:
            entries = [entry for entry in entries if entry[0] not in excluded]
            if len(entries) <= 1:
                return entries[0][0] if entries else None
            weights = [weight for _, weight in entries]
            divisor, top = reduce(gcd, weights), max(weights)
        if not entries:
            return None
        count = len(entries)
        while True:
            self._index = (self._index + 1) % count
            if self._index == 0:
                self._current -= divisor
                if self._current > top:
                    # Left over from a larger weight now excluded: no entry can be chosen
                    # until the weight comes down to the largest one left, so skip there
                    # at once instead of going round once per divisor.
                    self._current -= -(-(self._current - top) // divisor) * divisor
                if self._current <= 0:
                    self._current = top
            name, weight = entries[self._index]
            if weight >= self._current:
                return name
