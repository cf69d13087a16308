"""The spool contract: a durable key/value store for message data or metadata.

KumoMTA keeps two spools, ``data`` (message bodies) and ``meta`` (envelope and metadata),
each defined with ``kumo.define_spool``. A spool kind (``RocksDB``...) is provided by a
plugin through ``kumo_register_spool_kinds``; :class:`MemorySpool` is the in-core version
for tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Spool(Protocol):
    """A durable map from message id (32 hex chars) to bytes."""

    name: str

    async def put(self, key: str, value: bytes) -> None:
        """Store ``value``; when this returns the write is durable (synced to disk).

        Implementations batch concurrent calls into one synced write (group commit).
        """
        ...

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key`` (no error if absent). Need not be synced."""
        ...

    def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every (key, value), in key order; used for recovery at start-up."""
        ...

    def keys(self) -> AsyncIterator[str]:
        """Every key, in key order, without reading values (orphan collection)."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...


@runtime_checkable
class OrderedPuts(Protocol):
    """An optional spool capability: two records, in two spools, in order, at once.

    :class:`~kumocore.spool.store.MessageStore` saves a message as its body in the
    ``data`` spool and then its envelope in the ``meta`` spool, the commit marker. A kind
    that can write both in one commit, the body synced before the marker is written,
    saves the store a second commit per message (the RocksDB kind does; see
    docs/performance.md, seventh round). Without it the store awaits two ``put`` calls.
    """

    async def put_before(
        self, key: str, value: bytes, then: Spool, then_key: str, then_value: bytes
    ) -> None:
        """Store ``value`` under ``key`` here, then ``then_value`` under ``then_key`` in
        ``then``; return once both are durable. ``then``'s record must never reach the
        disk before this one is synced; a kind that cannot keep that for ``then`` (another
        kind, another loop) writes the two one after the other."""
        ...


@runtime_checkable
class OrderedDeletes(Protocol):
    """An optional spool capability: the reverse of :class:`OrderedPuts` for a removal.

    The store removes a message by deleting its envelope (the commit marker) and then its
    body: a body must not be gone while its marker may still come back after a crash. A
    kind that can queue both at once, the body's delete held back until the marker's is
    durable, saves the store a second commit per removal. Without it the store awaits
    two ``delete`` calls.
    """

    async def delete_after(self, key: str, then: Spool, then_key: str) -> None:
        """Delete ``then_key`` in ``then``, and ``key`` here once that delete is synced;
        return once both are queued (a delete need not be durable when this returns). A
        kind that cannot keep that order for ``then`` deletes one after the other."""
        ...


@runtime_checkable
class BatchWrites(Protocol):
    """An optional spool capability: many writes as one. An admin bounce removes 100,000
    messages at once, and a rebind saves as many metas; one ``delete`` or ``put`` each
    made as many tickets for the writer and as many waits (and a synced put each, one
    after the other, 3.6 ms a message). A kind that takes a whole list at once (the
    group-commit kinds: RocksDB, LMDB) is given the list; any other gets one call per
    key (:func:`delete_all`, :func:`put_all`)."""

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """:meth:`Spool.put` of every ``(key, value)``, in one write; returns once all
        are durable."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> None:
        """:meth:`Spool.delete` of every key in ``keys``, in one write (need not be
        synced)."""
        ...

    async def delete_many_after(
        self, keys: Sequence[str], then: Spool, then_keys: Sequence[str]
    ) -> None:
        """:meth:`OrderedDeletes.delete_after` for lists: delete ``then_keys`` in
        ``then``, and ``keys`` here once those deletes are synced; return once all are
        queued. A kind that cannot keep that order for ``then`` deletes one list after
        the other."""
        ...


async def put_all(spool: Spool, items: Sequence[tuple[str, bytes]]) -> None:
    """Store every ``(key, value)``: one write where ``spool`` is :class:`BatchWrites`,
    else one ``put`` after the other."""
    if not items:
        return
    put_many = getattr(spool, "put_many", None)  # not the runtime protocol's slow check
    if put_many is not None:
        await put_many(items)
        return
    for key, value in items:
        await spool.put(key, value)


async def delete_all(spool: Spool, keys: Sequence[str]) -> None:
    """Delete every key in ``keys``: one write where ``spool`` is :class:`BatchWrites`,
    else one ``delete`` after the other."""
    if not keys:
        return
    delete_many = getattr(spool, "delete_many", None)  # not the runtime protocol's check
    if delete_many is not None:
        await delete_many(keys)
        return
    for key in keys:
        await spool.delete(key)


@runtime_checkable
class Compactable(Protocol):
    """An optional spool capability: KumoMTA's ``spool-compact``, a forced flush and full
    compaction of the store (the RocksDB kind). A kind without it has nothing to compact,
    and the request does nothing for it, as in KumoMTA."""

    async def compact(self) -> None:
        """Flush what is in memory and compact the whole store; return when done. A
        storage error (a missing or corrupt file) raises."""
        ...


@runtime_checkable
class StoreStats(Protocol):
    """An optional spool capability: the store's own gauges for ``/metrics``, such as
    KumoMTA's ``rocks_spool_mem_table_total`` (the RocksDB kind). The core reads them at
    every scrape and labels each with ``path``, the spool's directory; a kind without it
    has no such gauges, as KumoMTA's spools other than RocksDB have none."""

    def store_stats(self) -> Mapping[str, float]:
        """``{metric name: value}`` as of now, every one a gauge. Called on the event
        loop at each scrape, so it must take microseconds (in-memory counters, no I/O),
        and it must not raise: a closed or failed store returns an empty mapping, and
        its gauges are left out of that scrape."""
        ...


#: ``factory(name=..., path=..., **options) -> Spool``; options are the remaining
#: ``kumo.define_spool`` fields (``flush``, ``rocks_params``...).
SpoolFactory = Callable[..., Spool]


class MemorySpool:
    """An in-memory spool for tests: durable only as long as the process lives."""

    def __init__(self, name: str = "memory", path: str | None = None, **_: Any) -> None:
        self.name = name
        self.path = path
        self._items: dict[str, bytes] = {}

    async def put(self, key: str, value: bytes) -> None:
        self._items[key] = bytes(value)

    async def get(self, key: str) -> bytes | None:
        return self._items.get(key)

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        for key in sorted(self._items):
            yield key, self._items[key]

    async def keys(self) -> AsyncIterator[str]:
        for key in sorted(self._items):
            yield key

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> Mapping[str, bytes]:
        return self._items
