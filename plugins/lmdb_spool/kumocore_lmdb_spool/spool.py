"""An LMDB spool with group commit, for message bodies and, beside them, envelopes.

Why LMDB for bodies: a RocksDB put copies a body into its WAL (with a CRC32C computed in
software by rocksdict's wheels), its memtable and later an SST, about 170 µs of CPU per
100 KB record; an LMDB commit copies it once into its pages and syncs them, about 40 µs
(docs/performance.md, eleventh round). Freed pages are reused, so a spool of bodies that
come and go stays the size of what is in flight. The ``meta`` spool defined at the same
path shares the environment, and each cycle writes both in one transaction
(:mod:`.environment`).

Each cycle of the loop's committer is one write transaction, and a committed transaction
is durable: LMDB syncs its data pages, then its meta page (``sync``/``metasync``, both
on). There is no write that is on disk but not synced, so the deletes the committer writes
without a sync (a delivered message's body) are held, hidden from reads, and go into the
next transaction: a crash loses them, which leaves an orphan body that the core's
collection at start-up removes (or an envelope that is delivered again), never a message
without its body.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from kumocore import ConfigError
from kumocore.spool.commit import GroupCommitSpool, take_chunk
from kumocore_lmdb_spool.environment import MAP_SIZE, HeldDeletes, SharedEnvironment
from kumocore_lmdb_spool.pages import unmap_cached_pages

if TYPE_CHECKING:
    import lmdb

__all__ = ["LmdbSpool"]

_SCAN_CHUNK_ITEMS = 2048
_SCAN_CHUNK_BYTES = 4 * 1024 * 1024
#: Chunks read between two releases of the mapped pages (:mod:`.pages`).
_UNMAP_EVERY = 8

#: A record as a scan reads it: (key, value), or (key, None) when only keys are read.
_Record = TypeVar("_Record", tuple[bytes, bytes], tuple[bytes, None])


class LmdbSpool(GroupCommitSpool):
    """A durable map from message id to bytes, stored in an LMDB environment that the
    spools defined at the same path share (:mod:`.environment`)."""

    def __init__(self, name: str, path: str, *, map_size: int = MAP_SIZE) -> None:
        import lmdb  # lazily: loading the plugin must not load LMDB

        super().__init__(name, path)
        _refuse_foreign_files(name, path)
        try:
            os.makedirs(path, exist_ok=True)
            self._environment, self.databases = SharedEnvironment.attach(
                name, path, map_size=map_size)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"kumo.define_spool: cannot open LMDB spool {name!r} at path {path!r}: {exc}"
            ) from exc
        # A cycle writes this spool together with the other spools of its environment.
        self.commit_group = self._environment
        self._env = self._environment.env
        self._lmdb_error: type[Exception] = lmdb.Error
        self.held = HeldDeletes()

    # ------------------------------------------------------------------ writes

    def _write_batch(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        """On the writer thread: one transaction with the held deletes and ``ops``; a
        batch of deletes only, not to be synced, is held for the next one."""
        self._environment.write([(self, ops, sync)])

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._read(self._get, key.encode())
        return value

    def _get(self, key: bytes) -> bytes | None:
        if key in self.held:
            return None
        with self._env.begin(db=self.databases.records) as txn:
            value: bytes | None = txn.get(key)
            return value

    async def scan_chunks(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every record in key order, in lists of up to 2,048 records (or 4 MiB); each
        chunk is read in a transaction of its own, so none stays open between chunks."""
        async for chunk in self._chunks(self._read_chunk):
            yield [(key.decode("utf-8", "backslashreplace"), value) for key, value in chunk]

    async def keys(self) -> AsyncIterator[str]:
        """Every key in key order, without reading the records (see
        :class:`~.environment.Databases`)."""
        async for chunk in self._chunks(self._read_keys):
            for key, _ in chunk:
                yield key.decode("utf-8", "backslashreplace")

    async def _chunks(
        self, read: Callable[[bytes | None], list[_Record]]
    ) -> AsyncIterator[list[_Record]]:
        """Chunks past held deletes. Every few chunks the pages that reading them mapped
        are let go, so that not even the peak of a start-up scan holds the file's pages
        around them: a shared environment keeps envelopes among the bodies."""
        mapped = os.path.join(self.path, "data.mdb")
        after: bytes | None = None
        try:
            for chunks in itertools.count():
                if chunks % _UNMAP_EVERY == 0:
                    unmap_cached_pages(mapped)
                chunk = await self._read(read, after)
                if not chunk:
                    return
                after = chunk[-1][0]
                held = self.held.snapshot()
                yield [record for record in chunk if record[0] not in held]
        finally:
            unmap_cached_pages(mapped)

    def _read_chunk(self, after: bytes | None) -> list[tuple[bytes, bytes]]:
        with self._env.begin(db=self.databases.records) as txn:
            return take_chunk(_from(txn, after), _SCAN_CHUNK_ITEMS, _SCAN_CHUNK_BYTES)

    def _read_keys(self, after: bytes | None) -> list[tuple[bytes, None]]:
        with self._env.begin(db=self.databases.ids) as txn:  # never the records' pages
            keys = itertools.islice(_from(txn, after, values=False), _SCAN_CHUNK_ITEMS)
            return [(key, None) for key, _ in keys]

    # ------------------------------------------------------------------ lifecycle

    def _close_store(self) -> None:
        try:  # held deletes, normally written by the committer's last flush already
            self._environment.write([(self, [], True)])
        except self._lmdb_error:
            pass  # a full disk: the orphans are collected at the next start
        self._environment.detach(self.name)


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
