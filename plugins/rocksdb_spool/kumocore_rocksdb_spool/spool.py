"""A RocksDB spool with group commit.

Durability is the point of a spool: ``put`` returns only once its record is synced to
disk, because the SMTP 250 is sent right after. One sync costs about as much for one
record as for a hundred, so concurrent writers share it (group commit): ``put`` and
``delete`` append to a pending list; when no commit is under way, everything pending is
handed to the spool's writer thread, which writes it as one WriteBatch, syncs the WAL
once, and hands the batch back to the event loop (one ``call_soon_threadsafe``), where
every caller's future is resolved and what piled up meanwhile goes next. So the batch
size adapts to the load by itself. The first write after an idle spell waits
:data:`COMMIT_WINDOW` (1 ms) for company before it is handed over: more records per sync
(at 2 KB messages and 20 senders the CPU per message went from 0.56 to 0.46 ms;
docs/performance.md, sixth round), a millisecond next to a sync's own latency. A plain
thread and queue rather than ``run_in_executor``: a round trip through the executor cost
the event loop about 13 us of CPU, this one about 4 us (two or more per message, at both
spools).

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
import queue
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from kumocore import ConfigError
from kumocore_rocksdb_spool.params import build_options

if TYPE_CHECKING:
    from rocksdict import Rdict, WriteBatch

__all__ = ["RocksDBSpool"]

# One commit takes at most this much; the rest waits for the next one. Bounds the time
# the writer holds the GIL inserting into the memtable, and so the loop's latency.
_MAX_BATCH_BYTES = 8 * 1024 * 1024
#: Seconds the first write after an idle spell waits for others to share its sync.
COMMIT_WINDOW = 0.001
_SCAN_CHUNK_ITEMS = 2048
_SCAN_CHUNK_BYTES = 4 * 1024 * 1024

#: A record as a scan reads it: (key, value), or (key, None) when only keys are read.
_Record = TypeVar("_Record", tuple[bytes, bytes], tuple[bytes, None])

# (key, value or None for a delete, the caller's future)
_Op = tuple[bytes, bytes | None, "asyncio.Future[None]"]
# A batch for the writer thread, with the loop its futures belong to; None stops it.
_Batch = tuple[asyncio.AbstractEventLoop, list[_Op]] | None


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
        self._pending: list[_Op] = []
        self._batches: queue.SimpleQueue[_Batch] = queue.SimpleQueue()
        self._in_flight = False  # a batch is with the writer thread
        self._idle: asyncio.Event | None = None  # set when none is (made by close())
        # Started with the first write, like the executor it replaces: a spool opened and
        # only read (or opened before a fork) has no thread.
        self._writer = threading.Thread(
            target=self._write_batches, name=f"rocksdb-{name}", daemon=True)
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
        await self._submit(key, bytes(value))

    async def delete(self, key: str) -> None:
        """Remove ``key``; batched with other writes, synced only if they need it."""
        await self._submit(key, None)

    async def _submit(self, key: str, value: bytes | None) -> None:
        if self._closed:
            raise RuntimeError(f"spool {self.name!r} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((key.encode(), value, future))
        if not self._in_flight:
            # The writes made within the window share the batch; while a batch is with
            # the writer, what arrives meanwhile goes as soon as it is back (_written).
            self._in_flight = True
            loop.call_later(COMMIT_WINDOW, self._dispatch, loop)
        # The commit is the writer thread's: a cancelled caller cancels only its own
        # wait, never the batch (its record may be on disk already, as for any crash).
        await future

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand what is pending (up to the batch bound) to the writer thread (``_in_flight``
        is already set: by ``_submit`` for a new batch, still set in ``_written``)."""
        if not self._writer.is_alive():
            self._writer.start()
        self._batches.put((loop, self._take_batch()))

    def _write_batches(self) -> None:
        """The writer thread: write each batch, hand it back to its loop."""
        while (item := self._batches.get()) is not None:
            loop, ops = item
            failure: BaseException | None = None
            try:
                self._write(ops)
            except BaseException as exc:  # every caller must hear of it, whatever it is
                failure = exc if isinstance(exc, Exception) else RuntimeError(
                    f"spool {self.name!r}: commit failed: {exc!r}")
            try:
                loop.call_soon_threadsafe(self._written, loop, ops, failure)
            except RuntimeError:  # the loop is closed: nobody is left waiting
                pass

    def _written(
        self, loop: asyncio.AbstractEventLoop, ops: list[_Op], failure: BaseException | None
    ) -> None:
        """On the loop: a batch is on disk (or failed); the next one goes."""
        _settle(ops, failure)
        if self._pending:
            self._dispatch(loop)
            return
        self._in_flight = False
        if self._idle is not None:
            self._idle.set()

    def _take_batch(self) -> list[_Op]:
        size, count = 0, 0
        for key, value, _ in self._pending:
            size += len(key) + (len(value) if value is not None else 0)
            count += 1
            if size >= _MAX_BATCH_BYTES:
                break
        ops, self._pending = self._pending[:count], self._pending[count:]
        return ops

    def _write(self, ops: list[_Op]) -> None:
        """On the writer thread: one batch, then one WAL sync if it holds any put."""
        batch = self._batch_type(raw_mode=True)
        sync = False
        for key, value, _ in ops:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
                sync = True
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
        if self._in_flight:  # let every pending write reach the disk first
            self._idle = asyncio.Event()
            await asyncio.shield(self._idle.wait())
        if self._reads:
            await asyncio.gather(*self._reads, return_exceptions=True)
        loop = asyncio.get_running_loop()
        if self._writer.is_alive():
            self._batches.put(None)
            await loop.run_in_executor(None, self._writer.join)
        await loop.run_in_executor(None, self._db.close)


def _settle(ops: list[_Op], failure: BaseException | None) -> None:
    for _, _, future in ops:
        if future.done():  # its caller was cancelled
            continue
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(failure)
