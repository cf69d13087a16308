"""The base of a spool kind whose writes go through its loop's group commit.

A kind plugin subclasses :class:`GroupCommitSpool` and provides the storage: how a batch
of ops is written (and synced) on the writer thread, the reads, and how the store is
closed. The base provides the spool contract's writes on top of :class:`.Committer`:
``put`` (returns once synced), ``delete``, and the core's ordered pair writes,
:meth:`~GroupCommitSpool.put_before` (``OrderedPuts``: a body synced before its commit
marker, in one cycle) and :meth:`~GroupCommitSpool.delete_after` (``OrderedDeletes``: a
body's delete only once its marker's delete is synced). Spools of different kinds share
one committer per loop, so a ``data`` spool of one kind and a ``meta`` spool of another
still get both records of a message in one cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, TypeGuard

from kumocore.spool.base import Spool, delete_all
from kumocore.spool.commit.arrivals import Expected
from kumocore.spool.commit.committer import Committer
from kumocore.spool.commit.ops import CommitGroup

__all__ = ["GroupCommitSpool", "committer_for", "expect_write", "take_chunk"]

#: The attribute an event loop keeps its committer in.
_COMMITTER_ATTRIBUTE = "_kumocore_spool_committer"


def committer_for(loop: asyncio.AbstractEventLoop) -> Committer:
    """The committer shared by the spools that ``loop`` writes to.

    It is kept on the loop itself: its writer thread hands every cycle back to exactly
    this loop, so the two live and die together (both asyncio's loops and uvloop's take
    attributes), and no module holds state for every loop of the process."""
    committer: Committer | None = getattr(loop, _COMMITTER_ATTRIBUTE, None)
    if committer is None:
        committer = Committer()
        setattr(loop, _COMMITTER_ATTRIBUTE, committer)
    return committer


def expect_write() -> Expected:
    """Announce a body on its way to the running loop's spools; the caller says
    :meth:`~.arrivals.Expected.arrived` once it handed the body over, or
    :meth:`~.arrivals.Expected.withdrawn` once it will not. The writer thread's commit
    window then closes as soon as nothing announced is left (:mod:`.arrivals`)."""
    return committer_for(asyncio.get_running_loop()).arrivals.expect()


class GroupCommitSpool(ABC):
    """A durable map from message id to bytes whose writes are group-committed."""

    #: Spools whose steps of one cycle this kind writes as one batch (:class:`CommitGroup`);
    #: None: every step of this spool is written alone, by :meth:`_write_batch`.
    commit_group: CommitGroup | None = None

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self._committer: Committer | None = None  # the loop's, from the first write on
        self._reads: set[asyncio.Future[Any]] = set()
        self._closed = False
        #: Synced writes done and records they carried: ``records / syncs`` is the batch size.
        self.syncs = 0
        self.records = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self.path!r}>"

    # ------------------------------------------------------------------ the kind's part

    @abstractmethod
    def _write_batch(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        """On the writer thread: write ``ops`` in order (a None value deletes) as one
        atomic batch, then make everything written so far durable if ``sync``. A write
        that is not synced may be lost in a crash, never reordered after a later sync."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The stored value, or None (see :meth:`_read` for running it in a thread)."""

    @abstractmethod
    def keys(self) -> AsyncIterator[str]:
        """Every key in key order, without reading the values."""

    @abstractmethod
    def scan_chunks(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every record in key order, in lists (recovery takes them a list at a time)."""

    @abstractmethod
    def _close_store(self) -> None:
        """In an executor thread, after every write and read is done: close the store."""

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
        A spool of another committer gets the two deletes one after the other. Data keys
        are never reused, so a delete that waits never meets a newer put of its key."""
        committer = self._writing()
        if _written_by(then, committer):
            await committer.submit(((then, then_key.encode(), None),),
                                   after=((then, (self, key.encode(), None)),))
            return
        await then.delete(then_key)
        await self.delete(key)

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store every ``(key, value)`` as one ticket; returns once all are synced (the
        core's ``BatchWrites``)."""
        if items:
            committer = self._writing()
            await committer.submit(
                tuple((self, key.encode(), bytes(value)) for key, value in items))

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove every key in ``keys`` as one ticket (``BatchWrites``)."""
        if keys:
            committer = self._writing()
            await committer.submit(tuple((self, key.encode(), None) for key in keys))

    async def delete_many_after(
        self, keys: Sequence[str], then: Spool, then_keys: Sequence[str]
    ) -> None:
        """:meth:`delete_after` for lists, as one ticket: ``then_keys`` in ``then``, and
        ``keys`` here once ``then`` has synced them (``BatchWrites``)."""
        if not keys and not then_keys:
            return
        committer = self._writing()
        if _written_by(then, committer):
            await committer.submit(
                tuple((then, key.encode(), None) for key in then_keys),
                after=tuple((then, (self, key.encode(), None)) for key in keys))
            return
        await delete_all(then, then_keys)
        await self.delete_many(keys)

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
        self._check_open()
        committer = self._committer
        if committer is None:
            committer = self._committer = committer_for(asyncio.get_running_loop())
            committer.register(self)
        return committer

    def _write(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        """The committer's entry point (:class:`~.cycle.Writable`), on the writer thread."""
        self._write_batch(ops, sync)
        self._count_written(len(ops), sync)

    def _count_written(self, records: int, synced: bool) -> None:
        """Keep the batch statistics; a commit group calls it for each spool it wrote."""
        if synced:
            self.syncs += 1
        self.records += records

    # ------------------------------------------------------------------ reads

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every record in key order (see :meth:`scan_chunks`)."""
        async for chunk in self.scan_chunks():
            for item in chunk:
                yield item

    async def _read(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in an executor thread; :meth:`close` waits for it."""
        self._check_open()
        future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._reads.add(future)  # close() waits for reads still using the store
        try:
            return await future
        finally:
            self._reads.discard(future)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"spool {self.name!r} is closed")

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Commit what is pending, wait for reads, then close the store."""
        if self._closed:
            return
        self._closed = True
        committer = self._committer
        if committer is not None:  # let every pending write reach the disk first
            await committer.drained()
            # And the writes that wait on (or for) a sync. A store that fails to sync
            # (a full disk) is closed all the same, so that it can be opened again.
            with contextlib.suppress(Exception):
                await committer.flush()
            if committer.unregister(self):
                await committer.stop()
        if self._reads:
            await asyncio.gather(*self._reads, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._close_store)


def take_chunk(records: Iterable[tuple[bytes, bytes]], items: int,
               size: int) -> list[tuple[bytes, bytes]]:
    """The first of ``records``, up to ``items`` of them or ``size`` bytes of values,
    whichever comes first (at least one): a scan's chunk, bounded for the loop's sake."""
    out: list[tuple[bytes, bytes]] = []
    taken = 0
    for key, value in records:
        out.append((key, value))
        taken += len(value)
        if len(out) >= items or taken >= size:
            break
    return out


def _written_by(spool: Spool, committer: Committer) -> TypeGuard[GroupCommitSpool]:
    """Whether ``spool`` is an open group-commit spool that ``committer`` writes (a spool
    first written from another loop has that loop's committer)."""
    return (isinstance(spool, GroupCommitSpool) and not spool._closed
            and spool._writing() is committer)
