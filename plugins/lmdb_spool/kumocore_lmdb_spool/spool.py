"""An LMDB spool with group commit, for message bodies.

Why LMDB for bodies: a RocksDB put copies a body into its WAL (with a CRC32C computed in
software by rocksdict's wheels), its memtable and later an SST, about 170 µs of CPU per
100 KB record; an LMDB commit copies it once into its pages and syncs them, about 40 µs
(docs/performance.md, eleventh round). Freed pages are reused, so a spool of bodies that
come and go stays the size of what is in flight.

Each cycle of the loop's committer is one write transaction, and a committed transaction
is durable: LMDB syncs its data pages, then its meta page (``sync``/``metasync``, both
on). There is no write that is on disk but not synced, so the deletes the committer writes
without a sync (a delivered message's body) are held here, hidden from reads, and go into
the next transaction: a crash loses them, which leaves an orphan body that the core's
collection at start-up removes, never a message without its body.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from kumocore import ConfigError
from kumocore.spool.commit import GroupCommitSpool, take_chunk
from kumocore_lmdb_spool.pages import unmap_cached_pages

if TYPE_CHECKING:
    import lmdb

__all__ = [
    "BODIES", "HELD_DELETES", "IDS", "MAP_SIZE", "LmdbSpool", "open_environment", "put_record",
]

#: The most an LMDB spool may hold. LMDB reserves it as address space only; the file
#: grows with what is stored (a full disk is refused earlier, by ``min_free_space``).
MAP_SIZE = 1 << 40

#: The two databases of the environment: the records, and their keys alone. Listing the
#: keys of ``BODIES`` would read every value (py-lmdb prefaults a record's pages when its
#: cursor lands on it): a million 2 KB bodies put 4 GB into the RSS at start-up, when
#: the orphan collection lists the keys. ``IDS`` holds each key with an empty value, in
#: the same transaction as its record.
BODIES = b"bodies"
IDS = b"ids"

#: Deletes held for the next transaction at the most; beyond, they are written at once
#: (under load every cycle has a transaction anyway).
HELD_DELETES = 1024

_SCAN_CHUNK_ITEMS = 2048
_SCAN_CHUNK_BYTES = 4 * 1024 * 1024
#: Chunks of keys listed between two releases of the mapped pages (:mod:`.pages`).
_UNMAP_EVERY = 8

#: A record as a scan reads it: (key, value), or (key, None) when only keys are read.
_Record = TypeVar("_Record", tuple[bytes, bytes], tuple[bytes, None])


class LmdbSpool(GroupCommitSpool):
    """A durable map from message id to bytes, stored in one LMDB environment."""

    def __init__(self, name: str, path: str, *, map_size: int = MAP_SIZE) -> None:
        import lmdb  # lazily: loading the plugin must not load LMDB

        super().__init__(name, path)
        _refuse_foreign_files(name, path)
        try:
            os.makedirs(path, exist_ok=True)
            self._env, self._bodies, self._ids = open_environment(path, map_size=map_size)
            # Reader slots of a process that was killed are freed, so that their old
            # snapshots do not keep freed pages from being reused.
            self._env.reader_check()
        except Exception as exc:
            raise ConfigError(
                f"kumo.define_spool: cannot open LMDB spool {name!r} at path {path!r}: {exc}"
            ) from exc
        self._lmdb_error: type[Exception] = lmdb.Error
        # Deletes written without a sync wait here for the next transaction; reads skip
        # them. Touched by the writer thread and by readers in executor threads.
        self._held: set[bytes] = set()
        self._held_lock = threading.Lock()

    # ------------------------------------------------------------------ writes

    def _write_batch(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        """On the writer thread: one transaction with the held deletes and ``ops``; a
        batch of deletes only, not to be synced, is held for the next one (up to
        :data:`HELD_DELETES`)."""
        if not sync and all(value is None for _, value in ops):
            with self._held_lock:
                self._held.update(key for key, _ in ops)
                if len(self._held) < HELD_DELETES:
                    return
            # Past the bound (a backlog draining with no new mail): written now.
        with self._held_lock:
            held = list(self._held)
        if not ops and not held:
            return  # everything written so far is in committed, synced transactions
        with self._env.begin(write=True) as txn:  # commits (and syncs) on leaving
            for key in held:
                self._delete(txn, key)
            for key, value in ops:
                if value is None:
                    self._delete(txn, key)
                else:
                    put_record(txn, self._bodies, self._ids, key, value)
        with self._held_lock:
            self._held.difference_update(held)
            # A key put again after its held delete is no longer deleted.
            self._held.difference_update(key for key, value in ops if value is not None)

    def _delete(self, txn: lmdb.Transaction, key: bytes) -> None:
        txn.delete(key, db=self._bodies)
        txn.delete(key, db=self._ids)

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._read(self._get, key.encode())
        return value

    def _get(self, key: bytes) -> bytes | None:
        with self._held_lock:
            if key in self._held:
                return None
        with self._env.begin(db=self._bodies) as txn:
            value: bytes | None = txn.get(key)
            return value

    async def scan_chunks(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every record in key order, in lists of up to 2,048 records (or 4 MiB); each
        chunk is read in a transaction of its own, so none stays open between chunks."""
        async for chunk in self._chunks(self._read_chunk):
            yield [(key.decode("utf-8", "backslashreplace"), value) for key, value in chunk]

    async def keys(self) -> AsyncIterator[str]:
        """Every key in key order, without reading the records (see :data:`IDS`)."""
        mapped = os.path.join(self.path, "data.mdb")
        listed = 0
        async for chunk in self._chunks(self._read_keys):
            if listed % _UNMAP_EVERY == 0:  # so that not even the peak holds the records
                unmap_cached_pages(mapped)
            listed += 1
            for key, _ in chunk:
                yield key.decode("utf-8", "backslashreplace")
        unmap_cached_pages(mapped)

    async def _chunks(
        self, read: Callable[[bytes | None], list[_Record]]
    ) -> AsyncIterator[list[_Record]]:
        after: bytes | None = None
        while True:
            chunk = await self._read(read, after)
            if not chunk:
                return
            after = chunk[-1][0]
            with self._held_lock:
                held = set(self._held)
            yield [record for record in chunk if record[0] not in held]

    def _read_chunk(self, after: bytes | None) -> list[tuple[bytes, bytes]]:
        with self._env.begin(db=self._bodies) as txn:
            return take_chunk(_from(txn, after), _SCAN_CHUNK_ITEMS, _SCAN_CHUNK_BYTES)

    def _read_keys(self, after: bytes | None) -> list[tuple[bytes, None]]:
        with self._env.begin(db=self._ids) as txn:  # never the records' pages
            keys = itertools.islice(_from(txn, after, values=False), _SCAN_CHUNK_ITEMS)
            return [(key, None) for key, _ in keys]

    # ------------------------------------------------------------------ lifecycle

    def _close_store(self) -> None:
        try:  # held deletes, normally written by the committer's last flush already
            self._write_batch([], sync=True)
        except self._lmdb_error:
            pass  # a full disk: the orphans are collected at the next start
        self._env.close()


def open_environment(path: str, *, sync: bool = True,
                     map_size: int = MAP_SIZE) -> tuple[lmdb.Environment, Any, Any]:
    """The environment at ``path`` and its two databases (``BODIES``, ``IDS``), opened as
    the spool opens them. ``sync=False`` is for a bulk load that syncs once at its end
    (``Environment.sync``); a spool's commits are always synced."""
    import lmdb

    env = lmdb.open(path, map_size=map_size, subdir=True, sync=sync, metasync=sync,
                    readahead=False, max_dbs=2, lock=True)
    return env, env.open_db(BODIES), env.open_db(IDS)


def put_record(txn: lmdb.Transaction, bodies: Any, ids: Any, key: bytes, value: bytes) -> None:
    """Store a record in the spool's layout: the value in ``bodies``, the key in ``ids``."""
    txn.put(key, value, db=bodies)
    txn.put(key, b"", db=ids)


#: What an LMDB spool's directory may hold: its two files, and the shards of
#: ``serve --workers N`` (kumocore.spool.shards), each a spool of its own.
_OWN_FILES = frozenset({"data.mdb", "lock.mdb"})
_SHARD = re.compile(r"worker-\d+")


def _refuse_foreign_files(name: str, path: str) -> None:
    """A spool's kind cannot change while it holds mail: LMDB would start an empty
    database beside a RocksDB one (or LocalDisk files), and every message's envelope
    would lose its body. So a directory with anything else in it is refused."""
    try:
        entries = sorted(os.listdir(path))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(
            f"kumo.define_spool: cannot open LMDB spool {name!r} at path {path!r}: {exc}"
        ) from exc
    foreign = [e for e in entries if e not in _OWN_FILES and not _SHARD.fullmatch(e)]
    if foreign:
        raise ConfigError(
            f"kumo.define_spool: spool {name!r} at path {path!r} holds files that are not "
            f"an LMDB spool ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}):"
            " a spool cannot change its kind while it holds mail; run it with its old kind"
            " until it is empty, or give kind 'LMDB' a new path")


def _from(txn: lmdb.Transaction, after: bytes | None, *,
          values: bool = True) -> Iterator[tuple[bytes, Any]]:
    """(key, value) pairs in key order (value None unless ``values``), past ``after``."""
    cursor = txn.cursor()
    found = cursor.first() if after is None else cursor.set_range(after)
    if found and after is not None and cursor.key() == after:
        found = cursor.next()
    if not found:
        return
    # Transactions are opened without ``buffers``: keys and values come as bytes.
    if values:
        yield from cast(Iterator[tuple[bytes, bytes]], cursor.iternext(keys=True, values=True))
    else:
        for key in cast(Iterator[bytes], cursor.iternext(keys=True, values=False)):
            yield key, None
