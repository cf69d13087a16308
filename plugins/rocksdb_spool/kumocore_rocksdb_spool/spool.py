"""A RocksDB spool with group commit.

Durability is the point of a spool: ``put`` returns only once its record is synced to
disk, because the SMTP 250 is sent right after. One sync costs about as much for one
record as for a hundred, so concurrent writers share it (group commit): ``put`` and
``delete`` append to a pending list; one committer task at a time takes everything
pending, writes it as one WriteBatch and syncs the WAL once on a dedicated writer thread,
then resolves every caller's future. While a commit is on disk, new calls pile up for
the next one, so the batch size adapts to the load by itself.

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
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from kumocore import ConfigError
from kumocore_rocksdb_spool.params import build_options

if TYPE_CHECKING:
    from rocksdict import Rdict, WriteBatch

__all__ = ["RocksDBSpool"]

# One commit takes at most this much; the rest waits for the next one. Bounds the time
# the writer holds the GIL inserting into the memtable, and so the loop's latency.
_MAX_BATCH_BYTES = 8 * 1024 * 1024
_SCAN_CHUNK_ITEMS = 2048
_SCAN_CHUNK_BYTES = 4 * 1024 * 1024

#: A record as a scan reads it: (key, value), or (key, None) when only keys are read.
_Record = TypeVar("_Record", tuple[bytes, bytes], tuple[bytes, None])

# (key, value or None for a delete, the caller's future)
_Op = tuple[bytes, bytes | None, "asyncio.Future[None]"]


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
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"rocksdb-{name}")
        self._pending: list[_Op] = []
        self._committer: asyncio.Task[None] | None = None
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
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit_loop(), name=f"rocksdb-{self.name}")
        # The commit runs in its own task: a cancelled caller cancels only its own wait,
        # never the batch (its record may be on disk already, as for any crash).
        await future

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            ops = self._take_batch()
            try:
                await loop.run_in_executor(self._writer, self._write, ops)
            except asyncio.CancelledError:
                # The loop is going away: nobody may wait forever for a commit.
                failure = RuntimeError(f"spool {self.name!r}: commit cancelled")
                _settle([*ops, *self._pending], failure)
                self._pending.clear()
                raise
            except Exception as exc:
                _settle(ops, exc)
            else:
                _settle(ops, None)

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
        while self._committer is not None and not self._committer.done():
            await asyncio.shield(self._committer)
        if self._reads:
            await asyncio.gather(*self._reads, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._writer, self._db.close)
        self._writer.shutdown(wait=True)


def _settle(ops: list[_Op], failure: BaseException | None) -> None:
    for _, _, future in ops:
        if future.done():  # its caller was cancelled
            continue
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(failure)
