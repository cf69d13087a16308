"""The message store: data then meta, recovery, quarantine of corrupt entries."""

from __future__ import annotations

import asyncio

import pytest

from kumocore.mail.message import Message
from kumocore.spool.base import MemorySpool
from kumocore.spool.store import MessageStore
from kumocore.spool.store_recovery import QUARANTINE_PREFIX


def make_store() -> MessageStore:
    return MessageStore(MemorySpool("data"), MemorySpool("meta"))


def message(n: int) -> Message:
    return Message("a@s.test", f"r{n}@example.com", f"Subject: {n}\r\n\r\nbody\r\n".encode(),
                   meta={"tenant": "t", "n": n})


async def test_saved_messages_are_recovered_with_envelope_meta_and_attempts() -> None:
    store = make_store()
    original = message(1)
    original.num_attempts = 3
    await store.save(original)
    recovered: list[Message] = []
    report = await store.recover_all(recovered)
    assert report.recovered == 1
    (again,) = recovered
    assert (again.id, str(again.recipient), again.meta, again.num_attempts) == (
        original.id, "r1@example.com", {"tenant": "t", "n": 1}, 3)
    assert await store.load_data(again.id) == original.data


async def test_corrupt_meta_entry_is_quarantined_and_recovery_goes_on() -> None:
    store = make_store()
    await store.save(message(1))
    await store.meta.put("ffffffffffffffffffffffffffffffff", b"{not json")
    await store.save(message(2))
    report = await store.recover_all()
    assert (report.recovered, report.quarantined) == (2, 1)
    assert isinstance(store.meta, MemorySpool)
    assert QUARANTINE_PREFIX + "ffffffffffffffffffffffffffffffff" in store.meta.items
    # A second start does not trip over the quarantined record again.
    assert (await store.recover_all()).quarantined == 0


async def test_removed_message_is_not_recovered() -> None:
    store = make_store()
    kept, gone = message(1), message(2)
    await store.save(kept)
    await store.save(gone)
    await store.remove(gone.id)
    recovered: list[Message] = []
    await store.recover_all(recovered)
    assert [m.id for m in recovered] == [kept.id]


async def test_recovery_batches_hold_every_message_once_in_key_order_without_corrupt_ones(
) -> None:
    # MemorySpool has no scan_chunks: the store groups scan()'s records itself.
    store = make_store()
    saved = [message(n) for n in range(600)]
    for m in saved:
        await store.save(m)
    await store.meta.put("ffffffffffffffffffffffffffffffff", b"[]")
    batches = [batch async for batch in store.recover_batches()]
    assert len(batches) > 1
    assert [m.id for batch in batches for m in batch] == sorted(m.id for m in saved)
    assert store.quarantined == 1


async def turns(n: int = 5) -> None:
    """Let the loop run a few turns: a save and each of its puts start a turn apart."""
    for _ in range(n):
        await asyncio.sleep(0)


class GatedSpool(MemorySpool):
    """A spool whose puts wait for a gate (or fail with ``error`` when it opens)."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        super().__init__(name)
        self.gate = asyncio.Event()
        self.waiting = 0
        self.error = error

    async def put(self, key: str, value: bytes) -> None:
        self.waiting += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        await super().put(key, value)


async def test_the_meta_record_is_written_only_once_the_body_is_durable() -> None:
    data, meta = GatedSpool("data"), GatedSpool("meta")
    store = MessageStore(data, meta)
    original = message(1)
    saving = asyncio.ensure_future(store.save(original))
    await turns()
    assert (data.waiting, meta.waiting) == (1, 0)  # the meta is the commit marker
    data.gate.set()
    await turns()
    assert meta.waiting == 1 and not saving.done()  # no 250 before the meta is synced
    meta.gate.set()
    await saving
    assert original.id in data.items and original.id in meta.items


async def test_a_save_whose_body_write_fails_writes_no_meta() -> None:
    data, meta = GatedSpool("data", OSError("No space left on device")), MemorySpool("meta")
    store = MessageStore(data, meta)
    data.gate.set()
    with pytest.raises(OSError, match="No space left"):
        await store.save(message(1))
    assert len(meta) == 0 and len(data) == 0
    assert (await store.recover_all()).recovered == 0


async def test_a_save_whose_meta_write_fails_raises_and_its_body_is_collected() -> None:
    data, meta = MemorySpool("data"), GatedSpool("meta", OSError("meta disk gone"))
    store = MessageStore(data, meta)
    meta.gate.set()
    with pytest.raises(OSError, match="meta disk gone"):
        await store.save(message(1))
    assert len(data) == 1  # an orphan body, as after a crash: the next recovery removes it
    assert await store.collect_garbage() == 1 and len(data) == 0


async def test_removing_many_messages_at_once_removes_each_and_a_shared_body_with_its_last(
) -> None:
    from kumocore.mail.body import SharedBody

    store = make_store()
    alone = [message(n) for n in range(5)]
    shared = SharedBody(b"Subject: x\r\n\r\nbody\r\n")
    sharing = [Message("a@s.test", f"s{n}@example.com", b"Received: x\r\n", shared=shared)
               for n in range(3)]  # fmt: skip
    held = message(9)
    for each in [*alone, *sharing]:
        await store.save(each)
    store.defer(held)  # deferred_spool: never written
    await store.remove_many([m.id for m in [*alone, *sharing[:2], held]])
    assert isinstance(store.meta, MemorySpool) and isinstance(store.data, MemorySpool)
    assert set(store.meta.items) == {sharing[2].id}
    assert set(store.data.items) == {shared.key}  # its last user is still there
    assert store.unsaved == 0
    await store.remove_many([sharing[2].id])
    assert (dict(store.meta.items), dict(store.data.items)) == ({}, {})


async def test_saving_many_metas_at_once_writes_each_and_a_held_message_whole() -> None:
    store = make_store()
    written, held = message(1), message(2)
    await store.save(written)
    store.defer(held)
    for each in (written, held):
        each.meta["tenant"] = "acme"
    await store.save_metas([written, held])
    recovered: list[Message] = []
    await store.recover_all(recovered)
    assert {m.id: m.meta["tenant"] for m in recovered} == {written.id: "acme", held.id: "acme"}
    assert store.unsaved == 0
