"""Messages on disk: bodies in the ``data`` spool, envelope + meta in the ``meta`` spool.

Write order is data first, then meta: the meta record is the commit marker. Recovery walks
the meta spool only, so a crash between the two writes leaves an orphan body (it costs disk
space until compaction tooling removes it; it is never delivered) but never a message that
cannot be loaded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from kumocore.spool.base import Spool

if TYPE_CHECKING:
    from kumocore.message import Message

log = structlog.get_logger("kumocore.spool")

QUARANTINE_PREFIX = "quarantine:"


@dataclass
class RecoveryReport:
    """What a start-up scan found."""

    recovered: int = 0
    quarantined: int = 0
    seconds: float = 0.0


class MessageStore:
    """Durable storage of whole messages over a data spool and a meta spool."""

    def __init__(self, data: Spool, meta: Spool) -> None:
        self.data = data
        self.meta = meta
        self.quarantined = 0

    async def save(self, message: Message) -> None:
        """Make ``message`` durable; when this returns, a 250 may be sent."""
        await self.data.put(message.id, message.data)
        await self.meta.put(message.id, message.meta_bytes())

    async def save_meta(self, message: Message) -> None:
        """Persist changed meta/attempt state (e.g. after a transient failure)."""
        await self.meta.put(message.id, message.meta_bytes())

    async def load_data(self, message_id: str) -> bytes | None:
        return await self.data.get(message_id)

    async def remove(self, message_id: str) -> None:
        """Forget a message that was delivered, bounced or expired (meta first)."""
        await self.meta.delete(message_id)
        await self.data.delete(message_id)

    async def recover(self, *, load_data: bool = False) -> AsyncIterator[Message]:
        """Yield every stored message; quarantine entries that cannot be decoded.

        Bodies are loaded lazily by delivery unless ``load_data`` is set, so recovering a
        million messages costs one pass over the (small) meta records.
        """
        from kumocore.ids import is_message_id
        from kumocore.message import Message, SpoolRecordError

        async for message_id, meta_bytes in self.meta.scan():
            if message_id.startswith(QUARANTINE_PREFIX):
                continue
            try:
                if not is_message_id(message_id):
                    raise SpoolRecordError(message_id, "key is not a message id")
                data = await self.data.get(message_id) if load_data else b""
                if load_data and data is None:
                    raise SpoolRecordError(message_id, "meta record has no data record")
                message = Message.from_spool(message_id, meta_bytes, data or b"")
            except Exception as exc:
                await self.quarantine(message_id, meta_bytes, str(exc))
                continue
            yield message

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

    async def close(self) -> None:
        await self.meta.close()
        await self.data.close()
