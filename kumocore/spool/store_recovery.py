"""Reading a message store back at start: recovery, quarantine, orphan collection.

The start-up scan decodes every meta record (a spool chunk at a time), rebuilds the counts
of the shared bodies from them and hands the messages over in batches. A meta record that
cannot be decoded is moved aside under :data:`QUARANTINE_PREFIX` so that it never blocks a
start again. Once every meta was seen, data records that no meta (not even a quarantined
one) references are deleted: the orphans a crash between writes or deletes can leave.

Messages are delivered, and new ones written, while the scan runs: the queue of deferred
HTTP injection requests expands a recovered request at once, log hooks spool records. A
message written since the scan began is already owned by the queues: the scan must not
hand it over a second time (it was delivered twice), and its records are not orphans
(they were collected as such, its body gone). The store notes those ids (``_fresh``).

The recovery half of :class:`kumocore.spool.store.MessageStore` (its base class): saving
and removing messages are there, reading them all back is here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
import structlog

from kumocore.mail.body import is_body_key

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.spool.base import Spool

log = structlog.get_logger("kumocore.spool")

QUARANTINE_PREFIX = "quarantine:"
#: Records per batch when a spool kind has no ``scan_chunks``.
_FALLBACK_CHUNK = 256


@dataclass
class RecoveryReport:
    """What a start-up scan found."""

    recovered: int = 0
    quarantined: int = 0
    seconds: float = 0.0


class StoreRecovery:
    """The recovery half of :class:`kumocore.spool.store.MessageStore` (see the module doc)."""

    if TYPE_CHECKING:  # MessageStore's attributes and helpers, for the type checker only
        data: Spool
        meta: Spool
        quarantined: int
        collected: int
        _refs: dict[str, int]
        _recovering: bool
        _fresh: set[str] | None

        async def load_data(self, message: Message | str) -> bytes | None: ...
        def _reference(self, message_id: str, key: str) -> None: ...

    async def recover(self, *, load_data: bool = False) -> AsyncIterator[Message]:
        """Yield every stored message; quarantine entries that cannot be decoded.

        Bodies are loaded lazily by delivery unless ``load_data`` is set, so recovering a
        million messages costs one pass over the (small) meta records. Once every meta
        was seen, data records that none references are deleted.
        """
        async for batch in self.recover_batches(load_data=load_data):
            for message in batch:
                yield message

    async def recover_batches(self, *, load_data: bool = False) -> AsyncIterator[list[Message]]:
        """:meth:`recover`, a spool chunk at a time: the start-up scan handles a million
        messages, and a suspension per message (through three async generators) cost
        more than decoding it."""
        from kumocore.mail.ids import is_message_id
        from kumocore.mail.message import Message, SpoolRecordError

        kept: set[str] = set()  # data keys that quarantined metas still reference
        self._recovering = True
        fresh = self._fresh = set()  # keys written from now on (see the module doc)
        try:
            async for chunk in _chunks(self.meta):
                batch: list[Message] = []
                for message_id, meta_bytes in chunk:
                    if message_id.startswith(QUARANTINE_PREFIX):
                        kept.add(_data_key(message_id[len(QUARANTINE_PREFIX):], meta_bytes))
                        continue
                    if message_id in fresh:
                        continue
                    try:
                        if not is_message_id(message_id):
                            raise SpoolRecordError(message_id, "key is not a message id")
                        message = Message.from_spool(message_id, meta_bytes, b"")
                        if load_data:
                            data = await self.load_data(message)
                            if data is None:
                                raise SpoolRecordError(message_id, "meta record has no data record")
                            message.set_data(data)
                    except Exception as exc:
                        kept.add(_data_key(message_id, meta_bytes))
                        await self.quarantine(message_id, meta_bytes, str(exc))
                        continue
                    if message.spool_ref is not None:
                        self._reference(message_id, message.spool_ref[0])
                    batch.append(message)
                if batch:
                    yield batch
        finally:
            self._recovering = False
        try:
            await self.collect_garbage(kept)
        finally:
            self._fresh = None

    async def collect_garbage(self, kept: Collection[str] = frozenset()) -> int:
        """Delete data records no meta references (orphans of a crash); their count.

        Runs before the listeners open; what the queues write meanwhile (the keys noted
        in ``_fresh``) is left alone. A message's own record is kept while its meta
        exists; a shared body while a counted message uses it.
        Both key listings come in key order, so they are merged without holding either.
        """
        metas = aiter(_keys(self.meta))
        current = await anext(metas, None)
        removed = 0
        fresh = frozenset() if self._fresh is None else self._fresh
        async for key in _keys(self.data):
            if key in kept or key in fresh:
                continue
            if is_body_key(key):
                if key in self._refs:
                    continue
            else:
                while current is not None and current < key:
                    current = await anext(metas, None)
                if current == key:
                    continue
            await self.data.delete(key)
            removed += 1
        if removed:
            log.warning("removed data records no message references", count=removed)
        self.collected = removed
        return removed

    async def quarantine(self, message_id: str, meta_bytes: bytes, reason: str) -> None:
        """Move an undecodable meta record aside so it never blocks a start again."""
        log.error("quarantined corrupt spool entry", id=message_id, reason=reason)
        self.quarantined += 1
        await self.meta.put(QUARANTINE_PREFIX + message_id, meta_bytes)
        await self.meta.delete(message_id)

    async def recover_all(self, sink: list[Message] | None = None) -> RecoveryReport:
        """Scan everything (used by tests and the benchmark); returns the counts."""
        report = RecoveryReport()
        started = time.perf_counter()
        quarantined_before = self.quarantined
        async for message in self.recover():
            report.recovered += 1
            if sink is not None:
                sink.append(message)
        report.seconds = time.perf_counter() - started
        report.quarantined = self.quarantined - quarantined_before
        return report


def _chunks(spool: Spool) -> AsyncIterator[list[tuple[str, bytes]]]:
    """``spool.scan_chunks()`` where the spool kind has it (RocksDB), else ``scan()``'s
    records in lists: ``scan_chunks`` is an optional, faster form of ``scan``."""
    if callable(getattr(spool, "scan_chunks", None)):
        chunks: AsyncIterator[list[tuple[str, bytes]]] = spool.scan_chunks()  # type: ignore[attr-defined]
        return chunks

    async def from_scan() -> AsyncIterator[list[tuple[str, bytes]]]:
        chunk: list[tuple[str, bytes]] = []
        async for item in spool.scan():
            chunk.append(item)
            if len(chunk) >= _FALLBACK_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    return from_scan()


def _keys(spool: Spool) -> AsyncIterator[str]:
    """``spool.keys()``; for a spool object without it (a wrapper written before keys()
    joined the contract), the keys of ``scan()``, which come in the same order."""
    if callable(getattr(spool, "keys", None)):
        return spool.keys()

    async def from_scan() -> AsyncIterator[str]:
        async for key, _ in spool.scan():
            yield key

    return from_scan()


def _data_key(message_id: str, meta_bytes: bytes) -> str:
    """The data record a (possibly corrupt) meta record refers to."""
    try:
        record = orjson.loads(meta_bytes)
    except orjson.JSONDecodeError:
        return message_id
    body = record.get("body") if isinstance(record, dict) else None
    return body if isinstance(body, str) else message_id
