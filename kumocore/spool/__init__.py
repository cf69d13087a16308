"""Spools: the contract and the in-memory implementation.

Owns durable storage of messages: the spool contract (a put returns only once the record is
synced), the ``LocalDisk`` kind, :class:`MessageStore` (bodies and meta, recovery at start),
worker shards and the free-space guard. It does not own what happens to a stored message
(:mod:`kumocore.queue`); other spool kinds come from plugins (``kumocore_rocksdb_spool``).
"""

from __future__ import annotations

from kumocore.spool.base import (
    BatchWrites,
    Compactable,
    MemorySpool,
    OrderedDeletes,
    OrderedPuts,
    Spool,
    SpoolFactory,
    StoreStats,
)

__all__ = ["BatchWrites", "Compactable", "MemorySpool", "OrderedDeletes", "OrderedPuts", "Spool",
           "SpoolFactory", "StoreStats"]  # fmt: skip
