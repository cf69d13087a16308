"""The cardinality cap of a metric label, applied where a value is counted: the first
``limit`` distinct keys are counted under their own name, every later one under ``other``.

Why the cap: a label's values often come from outside (a destination site, a policy's
cache or timer name, a Redis service), and each distinct value is one more series held
in memory for the process's life and written out on every ``/metrics`` scrape. Mail to a
million domains, or a hostile policy or peer, must not be able to grow them without
bound. The scrape caps what it shows too (:mod:`kumocore.admin.series_cap` ranks and
folds the series it reads); this cap bounds what is kept in the first place.

Why this shape: a key that got a place keeps it and a late key always goes to ``other``,
so no count is lost or moved, sums stay right and no series ever goes backwards (a
counter reset, to Prometheus).

Cost: these run per message, but only for a key the caller did not find. A caller looks
the key up in its own dict first (one lookup, no call here), and comes here on a miss.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, MutableMapping
from collections.abc import Set as AbstractSet
from typing import TypeVar

__all__ = ["capped_entry", "capped_key"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def capped_key(held: Mapping[K, object], key: K, limit: int, other: K,
               reserved: AbstractSet[K] = frozenset()) -> K:  # fmt: skip
    """The key to count ``key`` under: ``key`` itself if ``held`` (by the keys counted so
    far) has it or still has room for it among ``limit`` places, else ``other``.

    ``reserved`` keys always get a place of their own, kept for them within ``limit``
    whether they are held yet or not, so the other keys share ``limit - len(reserved)``
    places. ``other`` takes a place only if it is reserved or held before the cap."""
    if key in held or key in reserved:
        return key
    places = limit - len(reserved)
    taken = len(held)
    if reserved and taken >= places:
        # The reserved keys already held sit in their own places, not the others'
        # (a set operation over the few reserved keys, not a loop over ``held``).
        taken -= len(reserved & held.keys())
    return key if taken < places else other


def capped_entry(held: MutableMapping[K, V], key: K, limit: int, other: K,
                 make: Callable[[K], V], reserved: AbstractSet[K] = frozenset()) -> V:  # fmt: skip
    """``held``'s entry for ``key`` (:func:`capped_key`: its own, or past the cap
    ``other``'s), made with ``make(chosen key)`` and kept in ``held`` if it is new."""
    chosen = capped_key(held, key, limit, other, reserved)
    entry = held.get(chosen)
    if entry is None:
        entry = held[chosen] = make(chosen)
    return entry
