"""Reopening a spool after a storage error, so a disk that filled up once recovers.

RocksDB puts itself in a read-only error state when a WAL write fails (``No space left on
device``) and stays there: every later write fails, even once space is freed, until the
database is reopened. :class:`RecoveringSpool` wraps any spool kind: after a failed
``put``/``delete`` it closes the spool and opens it again (at most once per
:data:`REOPEN_INTERVAL`) before the next write. A failed write was never acknowledged, so
nothing acknowledged is lost; RocksDB's recovery drops a torn WAL tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import structlog

from kumocore.spool.base import Spool, delete_all

log = structlog.get_logger("kumocore.spool")

#: Seconds between two attempts to reopen a spool that keeps failing.
REOPEN_INTERVAL = 1.0


class RecoveringSpool:
    """A :class:`Spool` that reopens its inner spool after a failed write."""

    def __init__(self, open_spool: Callable[[], Spool],
                 on_failure: Callable[[], None] | None = None) -> None:
        self._open = open_spool
        self.inner: Spool = open_spool()
        self.name = self.inner.name
        self._on_failure = on_failure
        self._failed = False
        self._last_attempt = 0.0
        self._lock = asyncio.Lock()
        self.reopened = 0

    def __getattr__(self, name: str) -> Any:  # kind-specific attributes (stats, path)
        return getattr(self.inner, name)

    async def put(self, key: str, value: bytes) -> None:
        await self._write(self.inner.put, key, value)

    async def delete(self, key: str) -> None:
        await self._write(self.inner.delete, key)

    async def put_before(
        self, key: str, value: bytes, then: Spool, then_key: str, then_value: bytes
    ) -> None:
        """:class:`~kumocore.spool.base.OrderedPuts` through both wrappers: the inner
        kind's one commit while both spools are healthy, else one reopening put each."""
        paired = self._paired("put_before", then)
        if paired is None:
            await self.put(key, value)
            await then.put(then_key, then_value)
            return
        put_pair, inner_then = paired
        await self._write_pair(then, put_pair(key, value, inner_then, then_key, then_value))

    async def delete_after(self, key: str, then: Spool, then_key: str) -> None:
        """:class:`~kumocore.spool.base.OrderedDeletes` through both wrappers, as
        :meth:`put_before`: the inner kind's one call while both spools are healthy."""
        paired = self._paired("delete_after", then)
        if paired is None:
            await then.delete(then_key)
            await self.delete(key)
            return
        delete_pair, inner_then = paired
        await self._write_pair(then, delete_pair(key, inner_then, then_key))

    async def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """:class:`~kumocore.spool.base.BatchWrites` through the wrapper: the inner
        kind's one write where it has one, else one reopening ``put`` per item."""
        put_many = getattr(self.inner, "put_many", None)
        if put_many is None:
            for key, value in items:
                await self.put(key, value)
            return
        await self._write(put_many, items)

    async def delete_many(self, keys: Sequence[str]) -> None:
        """As :meth:`put_many`, one reopening ``delete`` per key without."""
        delete_many = getattr(self.inner, "delete_many", None)
        if delete_many is None:
            for key in keys:
                await self.delete(key)
            return
        await self._write(delete_many, keys)

    async def delete_many_after(
        self, keys: Sequence[str], then: Spool, then_keys: Sequence[str]
    ) -> None:
        """``BatchWrites`` through both wrappers, as :meth:`delete_after`."""
        paired = self._paired("delete_many_after", then)
        if paired is None:
            await delete_all(then, then_keys)
            await self.delete_many(keys)
            return
        delete_lists, inner_then = paired
        await self._write_pair(then, delete_lists(keys, inner_then, then_keys))

    def _paired(self, name: str, then: Spool) -> tuple[Callable[..., Any], Spool] | None:
        """The inner kind's two-spool write ``name`` and ``then`` as it must be handed to
        it; None when the kind has none or either spool awaits its reopening (the caller
        then writes one spool at a time, each write reopening its spool if needed)."""
        partner = then if isinstance(then, RecoveringSpool) else None
        # Looked up per call (the inner spool changes when reopened); getattr, not an
        # isinstance of the runtime protocol, which costs 3-7 us per message.
        method = getattr(self.inner, name, None)
        if method is None or self._failed or (partner is not None and partner._failed):
            return None
        return method, then if partner is None else partner.inner

    async def _write_pair(self, then: Spool, write: Awaitable[None]) -> None:
        try:
            await write
        except Exception:
            # Either database may be the one that failed: both are reopened before their
            # next write (at most once per REOPEN_INTERVAL each).
            if isinstance(then, RecoveringSpool):
                then._failed = True
            self._write_failed()
            raise

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(key)

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        async for item in self.inner.scan():
            yield item

    async def close(self) -> None:
        await self.inner.close()

    async def _write(self, op: Callable[..., Any], *args: Any) -> None:
        if self._failed:
            await self._reopen()
            op = getattr(self.inner, op.__name__)
        try:
            await op(*args)
        except Exception:
            self._write_failed()
            raise

    def _write_failed(self) -> None:
        """Reopen before the next write, and tell the node (its storage monitor looks at
        once)."""
        self._failed = True
        if self._on_failure is not None:
            self._on_failure()

    async def _reopen(self) -> None:
        async with self._lock:
            if not self._failed:
                return
            if time.monotonic() - self._last_attempt < REOPEN_INTERVAL:
                raise OSError(f"spool {self.name!r} failed a write and is not reopened yet")
            self._last_attempt = time.monotonic()
            old = self.inner
            with contextlib.suppress(Exception):  # a database in error state fails to flush
                await old.close()
            self.inner = await asyncio.to_thread(self._open)
            self._failed = False
            self.reopened += 1
            log.warning("spool reopened after a failed write", spool=self.name)


def configured_kind(spool: Spool) -> Spool:
    """The spool of the configured kind behind ``spool`` (its current one after a
    reopening). Ask it, not the wrapper, for an optional capability (``Compactable``,
    ``StoreStats``): from Python 3.12 on, protocol checks no longer see attributes that
    ``__getattr__`` forwards."""
    return spool.inner if isinstance(spool, RecoveringSpool) else spool
