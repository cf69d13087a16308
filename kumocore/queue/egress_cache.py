"""The egress pools and sources the policy defined, kept for their ``ttl``, as KumoMTA keeps them.

KumoMTA asks ``get_egress_pool`` and ``get_egress_source`` for a name once and keeps the
answer for the ``ttl`` of the object the handler returned (``kumo.make_egress_pool`` and
``kumo.make_egress_source``; 60 s unless the policy sets it), for at most 128 names each.
A handler that reads a data file or a database is therefore asked about once a minute
per name, not once per message, and a changed definition takes effect within its
``ttl``. A ``ttl`` of 0 asks every time. An answer of nothing (an undefined pool or
source) and a handler's error are not kept: the next message asks again.

Before this cache the ``ttl`` was parsed and ignored, and routing asked both handlers for
every message (docs/performance.md, fifteenth round).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["MAX_NAMES", "DefinitionCache"]

#: Names kept per cache, as in KumoMTA; the least recently stored goes first.
MAX_NAMES = 128


class _Expiring(Protocol):
    @property
    def ttl(self) -> float: ...


T = TypeVar("T", bound=_Expiring)


class DefinitionCache(Generic[T]):
    """Answers of one lookup handler by name, each until its own ``ttl`` has passed."""

    def __init__(
        self, lookup: Callable[[str], Awaitable[T | None]], *,
        clock: Callable[[], float] = time.monotonic, max_names: int = MAX_NAMES,
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        self._max_names = max_names
        self._entries: dict[str, tuple[float, T]] = {}

    async def get(self, name: str) -> T | None:
        """The definition of ``name``: kept, or asked for (and kept when there is one)."""
        entry = self._entries.get(name)
        if entry is not None and self._clock() < entry[0]:
            return entry[1]
        found = await self._lookup(name)
        if found is None:
            self._entries.pop(name, None)
            return None
        self._store(name, found)
        return found

    def _store(self, name: str, found: T) -> None:
        self._entries.pop(name, None)  # re-stored: it becomes the newest
        if found.ttl <= 0:
            return
        while len(self._entries) >= self._max_names:
            del self._entries[next(iter(self._entries))]
        self._entries[name] = (self._clock() + found.ttl, found)
