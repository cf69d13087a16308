"""A RocksDB spool with group commit.

Durability is the point of a spool: ``put`` returns only once its record is synced to
disk, because the SMTP 250 is sent right after. One sync costs about as much for one
record as for a hundred, so concurrent writers share it (group commit): every write goes
to the loop's :class:`kumocore.spool.commit.Committer`, whose one writer thread writes
what is pending in every spool of the loop as one WriteBatch per spool and one WAL sync
each, then hands the cycle back to the event loop (one ``call_soon_threadsafe``). The
ordered pair writes (``put_before``, ``delete_after``) come from
:class:`kumocore.spool.commit.GroupCommitSpool`; this module is RocksDB's part.

Why ``write`` + ``flush_wal(sync=True)`` rather than a ``sync=True`` write: rocksdict
keeps the GIL for the whole of ``write``, so a synced write would freeze the event loop
for every fsync; ``flush_wal`` releases the GIL while it syncs. RocksDB documents
``Write`` followed by ``SyncWAL`` as equally durable (the only difference is that other
readers may see the record before it is synced, which no spool user relies on).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from kumocore import ConfigError
from kumocore.spool.commit import GroupCommitSpool, take_chunk
from kumocore_rocksdb_spool.params import build_options
from kumocore_rocksdb_spool.stats import read_stats

if TYPE_CHECKING:
    from rocksdict import Rdict, WriteBatch

__all__ = ["RocksDBSpool"]

_SCAN_CHUNK_ITEMS = 2048
_SCAN_CHUNK_BYTES = 4 * 1024 * 1024

#: A record as a scan reads it: (key, value), or (key, None) when only keys are read.
_Record = TypeVar("_Record", tuple[bytes, bytes], tuple[bytes, None])


class RocksDBSpool(GroupCommitSpool):
    """A durable map from message id to bytes, stored in one RocksDB database."""

    def __init__(
        self,
        name: str,
        path: str,
        *,
        flush: bool = False,
        rocks_params: Mapping[str, Any] | None = None,
    ) -> None:
        import rocksdict  # lazily: loading the plugin must not load RocksDB

        super().__init__(name, path)
        if os.path.exists(os.path.join(path, "data.mdb")):
            # Another kind's spool: RocksDB would start an empty database beside it.
            raise ConfigError(
                f"kumo.define_spool: spool {name!r} at path {path!r} holds an LMDB spool "
                "(data.mdb): a spool cannot change its kind while it holds mail; run it "
                "with kind 'LMDB' until it is empty, or give kind 'RocksDB' a new path")
        options = build_options(rocksdict, flush=flush, params=rocks_params or {})
        try:
            os.makedirs(path, exist_ok=True)  # RocksDB only creates the last component
            self._db: Rdict = rocksdict.Rdict(path, options)
        except Exception as exc:
            raise ConfigError(
                f"kumo.define_spool: cannot open RocksDB spool {name!r} at path {path!r}: {exc}"
            ) from exc
        self._unsynced = rocksdict.WriteOptions()
        self._unsynced.sync = False
        self._batch_type: type[WriteBatch] = rocksdict.WriteBatch

    def _write_batch(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        """On the writer thread: one batch (if any op), then one WAL sync if ``sync``."""
        if ops:
            batch = self._batch_type(raw_mode=True)
            for key, value in ops:
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            self._db.write(batch, self._unsynced)
        if sync:
            self._db.flush_wal(True)

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._read(self._db.get, key.encode())
        return value

    async def scan_chunks(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every record in key order, as lists of up to :data:`_SCAN_CHUNK_ITEMS`.

        Scans run at start-up only (recovery, shard migration, orphan collection), before
        anything is served, so a chunk is read on the event loop's thread: about 2 ms
        per chunk of meta records. A thread would not read in parallel (rocksdict keeps
        the GIL while it iterates) and handing each chunk over cost 10 % more CPU.
        """
        async for chunk in self._chunks(self._read_chunk):
            yield [(key.decode("utf-8", "backslashreplace"), value) for key, value in chunk]

    async def keys(self) -> AsyncIterator[str]:
        """Every key in key order, read in chunks as :meth:`scan_chunks` does."""
        async for chunk in self._chunks(self._read_keys):
            for key, _ in chunk:
                yield key.decode("utf-8", "backslashreplace")

    async def _chunks(
        self, read: Callable[[bytes | None], list[_Record]]
    ) -> AsyncIterator[list[_Record]]:
        after: bytes | None = None
        while True:
            self._check_open()
            chunk = read(after)
            if not chunk:
                return
            after = chunk[-1][0]
            yield chunk
            await asyncio.sleep(0)  # other tasks get a turn between chunks

    def _read_chunk(self, after: bytes | None) -> list[tuple[bytes, bytes]]:
        # A fresh iterator per chunk: nothing stays pinned while the consumer works, and
        # an abandoned scan leaves no iterator keeping the database alive.
        records = ((_raw(key), _raw(value)) for key, value in self._db.items(from_key=after)
                   if key != after)
        return take_chunk(records, _SCAN_CHUNK_ITEMS, _SCAN_CHUNK_BYTES)

    def _read_keys(self, after: bytes | None) -> list[tuple[bytes, None]]:
        # rocksdict's key iterator: one call per key (an explicit iterator takes three).
        keys = itertools.islice(self._db.keys(from_key=after), _SCAN_CHUNK_ITEMS + 1)
        out = [(key, None) for key in keys if key != after and isinstance(key, bytes)]
        del out[_SCAN_CHUNK_ITEMS:]
        return out

    # ------------------------------------------------------------------ compaction

    async def compact(self) -> None:
        """KumoMTA's ``spool-compact``: flush the memtables, then compact the whole key
        range, on an executor thread (both release the GIL: the event loop's longest gap
        was 3 ms over a 0.7 s compaction). :meth:`close` waits for it, as for a read."""
        await self._read(self._compact)

    def _compact(self) -> None:
        self._db.flush(True)
        self._db.compact_range(None, None)

    # ------------------------------------------------------------------ metrics

    def store_stats(self) -> dict[str, int]:
        """KumoMTA's ``rocks_spool_*`` gauges now (the core's ``StoreStats``; see
        :mod:`.stats`), on the caller's thread: microseconds. Empty once closed."""
        return {} if self._closed else read_stats(self._db)

    # ------------------------------------------------------------------ lifecycle

    def _close_store(self) -> None:
        self._db.close()


def _raw(item: object) -> bytes:
    """A key or value of the raw-mode database, which must be bytes (rocksdict types
    them loosely)."""
    if not isinstance(item, bytes):
        raise TypeError(f"raw-mode RocksDB gave {type(item).__name__}, not bytes")
    return item
