"""Messages written while the start-up scan of the spool still runs.

The queue of deferred injection requests (``generator.kumomta.internal``) expands a
recovered request as soon as the scan hands it over, while the scan goes on. A restart
in the middle of an 80,000-recipient request (``kumocore serve``, SIGTERM, start again)
showed both faults this checks, on RocksDB, whose scans see what is written meanwhile:

* the scan reached the newly generated messages too and queued each a second time: 388
  were delivered twice, then found without a body and quarantined;
* orphan collection, merging the meta and data key listings, took the data records of
  32 of them for orphans and deleted them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from kumocore.mail.message import Message
from kumocore.spool.store import MessageStore
from tests.reception.shared_body_stores import open_store

#: More than one chunk of a RocksDB scan (2,048 records).
OLD = 2_100


def _message(n: int) -> Message:
    return Message("s@example.org", f"r{n}@example.com", b"Subject: x\r\n\r\nbody\r\n")


async def test_a_message_written_during_the_scan_is_not_recovered_a_second_time(
    tmp_path: Path,
) -> None:
    store = open_store("rocksdb", str(tmp_path))
    await asyncio.gather(*(store.save(_message(n)) for n in range(OLD)))
    seen: list[str] = []
    generated: Message | None = None
    async for batch in store.recover_batches():
        seen += [m.id for m in batch]
        if generated is None:  # a recovered request expands while the scan goes on
            generated = _message(-1)
            await store.save(generated)
    assert generated is not None and len(seen) == OLD
    assert generated.id not in seen
    assert await store.load_data(generated) == generated.data
    await store.close()


class _GeneratingStore:
    """Writes a new message when orphan collection deletes its first orphan, as the
    generator queue does while the start-up scan finishes."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store
        self.generated: Message | None = None
        self._delete = store.data.delete
        store.data.delete = self.delete  # type: ignore[method-assign]

    async def delete(self, key: str) -> None:
        if self.generated is None:
            self.generated = _message(-1)
            await self.store.save(self.generated)
        await self._delete(key)


async def test_orphan_collection_keeps_the_body_of_a_message_written_meanwhile(
    tmp_path: Path,
) -> None:
    store = open_store("rocksdb", str(tmp_path))
    # Bodies a crash left without their envelope: collected at the next start.
    await asyncio.gather(*(store.data.put(f"00000000000000000000000000{n:06d}", b"orphan")
                           for n in range(OLD)))
    generating = _GeneratingStore(store)
    report = await store.recover_all()
    assert report.recovered == 0 and store.collected == OLD
    assert generating.generated is not None
    assert await store.load_data(generating.generated) == generating.generated.data
    await store.close()
