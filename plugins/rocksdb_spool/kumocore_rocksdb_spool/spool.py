"""A RocksDB spool with group commit.

Durability is the point of a spool: ``put`` returns only once its record is synced to
disk, because the SMTP 250 is sent right after. One sync costs about as much for one
record as for a hundred, so concurrent writers share it (group commit): every write goes
to the loop's :class:`~kumocore_rocksdb_spool.committer.Committer`, whose one writer
thread writes what is pending in every spool of the loop as one WriteBatch per spool and
one WAL sync each, then hands the cycle back to the event loop (one
``call_soon_threadsafe``). :meth:`RocksDBSpool.put_before` writes a body and its commit
marker in one cycle, the body synced first (the core's ``OrderedPuts``);
:meth:`RocksDBSpool.delete_after` removes them in the reverse order (``OrderedDeletes``):
the body's delete waits until the markers' spool has synced the marker's delete, so
that no crash keeps a marker whose body is gone (:mod:`.deferred`). Data keys are never
reused, so a delete that waits never meets a newer put of its key.

Why ``write`` + ``flush_wal(sync=True)`` rather than a ``sync=True`` write: rocksdict
keeps the GIL for the whole of ``write``, so a synced write would freeze the event loop
for every fsync; ``flush_wal`` releases the GIL while it syncs. RocksDB documents
``Write`` followed by ``SyncWAL`` as equally durable (the only difference is that other
readers may see the record before it is synced, which no spool user relies on).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from kumocore import ConfigError
from kumocore.spool import Spool
from kumocore_rocksdb_spool.committer import Committer
from kumocore_rocksdb_spool.params import build_options

if TYPE_CHECKING:
    from rocksdict import Rdict, WriteBatch

__all__ = ["RocksDBSpool", "committer_for"]

_SCAN_CHUNK_ITEMS = 2048
_SCAN_CHUNK_BYTES = 4 * 1024 * 1024

#: A record as a scan reads it: (key, value), or (key, None) when only keys are read.
_Record = TypeVar("_Record", tuple[bytes, bytes], tuple[bytes, None])

# The committer of each running loop, shared by the spools written from it.
_COMMITTERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Committer] = (
    weakref.WeakKeyDictionary())


def committer_for(loop: asyncio.AbstractEventLoop) -> Committer:
    """The committer shared by the spools that ``loop`` writes to."""
    committer = _COMMITTERS.get(loop)
    if committer is None:
        committer = _COMMITTERS[loop] = Committer()
    return committer


class RocksDBSpool:
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

        self.name = name
        self.path = path
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
        self._committer: Committer | None = None  # the loop's, from the first write on
        self._reads: set[asyncio.Future[Any]] = set()
        self._closed = False
        #: Synced writes done and records they carried: ``records / syncs`` is the batch size.
        self.syncs = 0
        self.records = 0

    def __repr__(self) -> str:
        return f"<RocksDBSpool {self.name!r} at {self.path!r}>"

    # ------------------------------------------------------------------ writes

    async def put(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``; returns once it is synced to disk."""
        committer = self._writing()
        await committer.submit(((self, key.encode(), bytes(value)),))

    async def delete(self, key: str) -> None:
        """Remove ``key``; batched with other writes, synced only if they need it."""
        committer = self._writing()
        await committer.submit(((self, key.encode(), None),))

    async def delete_after(self, key: str, then: Spool, then_key: str) -> None:
        """Delete ``then_key`` in ``then`` and ``key`` here, this one once that delete is
        synced (the core's ``OrderedDeletes``); returns once both are queued, as one
        ticket. Under load ``then`` syncs in every cycle for its new records and ``key``
        goes in the next; else ``then`` is synced for it within ``WAIT_BOUND`` (20 ms).
        A spool of another committer or kind gets the two deletes one after the other."""
        committer = self._writing()
        if _written_by(then, committer):
            await committer.submit(((then, then_key.encode(), None),),
                                   after=((then, (self, key.encode(), None)),))
            return
        await then.delete(then_key)
        await self.delete(key)

    async def put_before(
        self, key: str, value: bytes, then: Spool, then_key: str, then_value: bytes
    ) -> None:
        """Store ``value`` here, then ``then_value`` in the spool ``then``; returns once both
        are synced. ``then``'s record never reaches the disk before this one is synced.

        A spool of the same loop's committer gets both in one commit cycle; any other
        spool gets them one after the other."""
        committer = self._writing()
        # Both spools must be written by this loop's committer, in an order it can keep.
        if _written_by(then, committer) and committer.order(self, then):
            # The commit is the writer thread's: a cancelled caller cancels only its own
            # wait, never the cycle (its records may be on disk already, as for any crash).
            await committer.submit(
                ((self, key.encode(), bytes(value)), (then, then_key.encode(), bytes(then_value))))
            return
        await self.put(key, value)
        await then.put(then_key, then_value)

    def _writing(self) -> Committer:
        if self._closed:
            raise RuntimeError(f"spool {self.name!r} is closed")
        committer = self._committer
        if committer is None:
            committer = self._committer = committer_for(asyncio.get_running_loop())
            committer.register(self)
        return committer

    def _write(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
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
            self.syncs += 1
        self.records += len(ops)

    # ------------------------------------------------------------------ reads

    async def _read(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise RuntimeError(f"spool {self.name!r} is closed")
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._reads.add(future)  # close() waits for reads still using the database
        try:
            return await future
        finally:
            self._reads.discard(future)

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._read(self._db.get, key.encode())
        return value

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every record in key order (see :meth:`scan_chunks`)."""
        async for chunk in self.scan_chunks():
            for item in chunk:
                yield item

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
            if self._closed:
                raise RuntimeError(f"spool {self.name!r} is closed")
            chunk = read(after)
            if not chunk:
                return
            after = chunk[-1][0]
            yield chunk
            await asyncio.sleep(0)  # other tasks get a turn between chunks

    def _read_chunk(self, after: bytes | None) -> list[tuple[bytes, bytes]]:
        # A fresh iterator per chunk: nothing stays pinned while the consumer works, and
        # an abandoned scan leaves no iterator keeping the database alive.
        out: list[tuple[bytes, bytes]] = []
        size = 0
        for key, value in self._db.items(from_key=after):
            if key == after:
                continue
            assert isinstance(key, bytes) and isinstance(value, bytes)  # raw mode
            out.append((key, value))
            size += len(value)
            if len(out) >= _SCAN_CHUNK_ITEMS or size >= _SCAN_CHUNK_BYTES:
                break
        return out

    def _read_keys(self, after: bytes | None) -> list[tuple[bytes, None]]:
        # rocksdict's key iterator: one call per key (an explicit iterator takes three).
        keys = itertools.islice(self._db.keys(from_key=after), _SCAN_CHUNK_ITEMS + 1)
        out = [(key, None) for key in keys if key != after and isinstance(key, bytes)]
        del out[_SCAN_CHUNK_ITEMS:]
        return out

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Commit what is pending, wait for reads, flush memtables and close the database."""
        if self._closed:
            return
        self._closed = True
        committer = self._committer
        if committer is not None:  # let every pending write reach the disk first
            await committer.drained()
            # And the writes that wait on (or for) a sync. A database that fails to sync
            # (a full disk) is closed all the same, so that it can be opened again.
            with contextlib.suppress(Exception):
                await committer.flush()
            if committer.unregister(self):
                await committer.stop()
        if self._reads:
            await asyncio.gather(*self._reads, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._db.close)


def _written_by(spool: Spool, committer: Committer) -> TypeGuard[RocksDBSpool]:
    """Whether ``spool`` is an open RocksDB spool that ``committer`` writes (a spool first
    written from another loop has that loop's committer)."""
    return (isinstance(spool, RocksDBSpool) and not spool._closed
            and spool._writing() is committer)
