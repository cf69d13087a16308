"""One body record per transaction in every spool kind, removed with its last message;
recovery rebuilds the counts and collects bodies no meta references."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kumocore.mail.body import SharedBody, is_body_key
from kumocore.mail.message import Message
from kumocore.spool.base import MemorySpool, Spool
from kumocore.spool.localdisk import LocalDiskSpool
from kumocore.spool.store import MessageStore
from kumocore.spool.store_recovery import QUARANTINE_PREFIX

BODY = b"Subject: shared\r\n\r\n" + b"b" * 4096 + b"\r\n"
Opener = Callable[[], MessageStore]


def _rocksdb(name: str, path: str) -> Spool:
    from kumocore_rocksdb_spool import RocksDBSpool  # lazily, as kumocore itself does

    spool: Spool = RocksDBSpool(name, path)
    return spool


@pytest.fixture(params=["memory", "localdisk", "rocksdb", "lmdb"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens "the same" store again, as a restart does (memory: the same dicts)."""
    kind = request.param
    memory = (MemorySpool("data"), MemorySpool("meta"))
    opened: list[MessageStore] = []

    def open_store() -> MessageStore:
        for store in opened:  # a restart: the previous process is gone
            store.data, store.meta = MemorySpool("x"), MemorySpool("y")
        if kind == "memory":
            store = MessageStore(*memory)
        elif kind == "localdisk":
            store = MessageStore(LocalDiskSpool("data", str(tmp_path / "data")),
                                 LocalDiskSpool("meta", str(tmp_path / "meta")))
        elif kind == "lmdb":  # LMDB bodies, RocksDB envelopes
            from kumocore_lmdb_spool import LmdbSpool

            store = MessageStore(LmdbSpool("data", str(tmp_path / "data")),
                                 _rocksdb("meta", str(tmp_path / "meta")))
        else:
            store = MessageStore(_rocksdb("data", str(tmp_path / "data")),
                                 _rocksdb("meta", str(tmp_path / "meta")))
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


async def _reopen(store: MessageStore, opener: Opener) -> MessageStore:
    await store.close()
    return opener()


def transaction(count: int) -> list[Message]:
    shared = SharedBody(BODY)
    return [Message("a@s.test", f"r{n}@example.com", f"Received: {n}\r\n".encode(),
                    shared=shared) for n in range(count)]


async def data_keys(store: MessageStore) -> list[str]:
    """The data spool's keys once the deletes it holds back are written: a RocksDB spool
    writes a body's delete only once its marker's delete is synced."""
    if not isinstance(store.data, MemorySpool | LocalDiskSpool):
        from kumocore.spool.commit import committer_for

        await committer_for(asyncio.get_running_loop()).flush()
    return [key async for key in store.data.keys()]  # noqa: SIM118 (a spool, not a dict)


async def test_a_transaction_is_stored_as_one_body_and_removed_with_its_last_message(
    opener: Opener,
) -> None:
    store = opener()
    messages = transaction(3)
    for message in messages:
        await store.save(message)
    (key,) = await data_keys(store)
    assert is_body_key(key)
    assert await store.load_data(messages[1]) == b"Received: 1\r\n" + BODY
    await store.remove(messages[0])
    await store.remove(messages[1])
    assert await data_keys(store) == [key]
    await store.remove(messages[2])
    assert await data_keys(store) == []


async def test_after_a_restart_counts_come_from_the_metas_and_bodies_load_lazily(
    opener: Opener,
) -> None:
    store = opener()
    for message in transaction(3):
        await store.save(message)
    store = await _reopen(store, opener)
    recovered: list[Message] = []
    await store.recover_all(recovered)
    assert sorted([await store.load_data(m) for m in recovered]) == [
        f"Received: {n}\r\n".encode() + BODY for n in range(3)]
    for message in recovered[:2]:
        await store.remove(message)
    assert len(await data_keys(store)) == 1
    await store.remove(recovered[2])
    assert await data_keys(store) == []


async def test_recovery_collects_a_body_written_before_a_crash_and_no_meta(
    opener: Opener,
) -> None:
    store = opener()
    await store.data.put(SharedBody(BODY).key, BODY)  # the crash came before any meta
    await store.data.put("0" * 32, b"own body, meta never written")
    kept = transaction(2)
    for message in kept:
        await store.save(message)
    store = await _reopen(store, opener)
    assert (await store.recover_all()).recovered == 2
    assert store.collected == 2
    assert await data_keys(store) == [kept[0].spool_ref[0]]  # type: ignore[index]


async def test_a_body_is_not_deleted_while_recovery_has_metas_left_to_count(
    opener: Opener,
) -> None:
    store = opener()
    for message in transaction(3):
        await store.save(message)
    store = await _reopen(store, opener)
    seen: list[Message] = []
    async for message in store.recover():
        if not seen:  # delivered at once, before the other two metas were scanned
            await store.remove(message)
        seen.append(message)
    for message in seen[1:]:
        assert await store.load_data(message) is not None


async def test_a_quarantined_meta_keeps_its_body_for_the_operator(opener: Opener) -> None:
    store = opener()
    (message,) = transaction(1)
    await store.save(message)
    key = message.spool_ref[0]  # type: ignore[index]
    await store.meta.put(QUARANTINE_PREFIX + message.id, message.meta_bytes())
    await store.meta.delete(message.id)
    store = await _reopen(store, opener)
    await store.recover_all()
    assert await data_keys(store) == [key]


async def test_a_message_edited_before_saving_gets_its_own_record(opener: Opener) -> None:
    store = opener()
    one, two = transaction(2)
    one.set_data(b"Subject: mine\r\n\r\nmine\r\n")
    await store.save(one)
    await store.save(two)
    assert sorted(await data_keys(store)) == sorted([one.id, two.spool_ref[0]])  # type: ignore[index]
    assert await store.load_data(one) == b"Subject: mine\r\n\r\nmine\r\n"


async def test_headers_prepended_per_message_are_spooled_with_the_shared_body(
    opener: Opener,
) -> None:
    store = opener()
    one, two = transaction(2)
    one.prepend_header("X-KumoRef", "eyJ4IjoxfQ==")
    await store.save(one)
    await store.save(two)
    assert len(await data_keys(store)) == 1  # still one body for both
    expected = {one.id: one.data, two.id: two.data}
    store = await _reopen(store, opener)
    recovered: list[Message] = []
    await store.recover_all(recovered)
    assert {m.id: await store.load_data(m) for m in recovered} == expected


class _WithoutKeys:
    """A spool wrapper from before ``keys()`` was in the contract (put/get/delete/scan)."""

    def __init__(self, inner: MemorySpool) -> None:
        self.name = inner.name
        self.put, self.get, self.delete = inner.put, inner.get, inner.delete
        self.scan, self.close = inner.scan, inner.close


async def test_orphans_are_collected_through_scan_when_a_spool_has_no_keys() -> None:
    data, meta = MemorySpool("data"), MemorySpool("meta")
    store = MessageStore(_WithoutKeys(data), _WithoutKeys(meta))  # type: ignore[arg-type]
    await data.put(SharedBody(BODY).key, BODY)  # orphan
    for message in transaction(2):
        await store.save(message)
    await store.recover_all()
    assert store.collected == 1 and len(data) == 1


async def test_a_message_edited_after_saving_with_a_shared_body_stops_using_it(
    opener: Opener,
) -> None:
    # A policy event edits a deferred message of a transaction (rebind_message, say):
    # saved again it gets its own record, and removing it later removes that record.
    store = opener()
    one, two = transaction(2)
    await store.save(one)
    await store.save(two)
    (body_key,) = await data_keys(store)
    one.set_data(b"Subject: edited\r\n\r\nedited\r\n")
    await store.save(one)
    assert sorted(await data_keys(store)) == sorted([body_key, one.id])
    assert await store.load_data(one.id) == b"Subject: edited\r\n\r\nedited\r\n"
    assert store.shared_bodies() == {body_key: 1}
    await store.remove(one)
    assert await data_keys(store) == [body_key]
    await store.remove(two)
    assert await data_keys(store) == []


async def test_the_last_user_of_a_shared_body_edited_and_saved_frees_the_body(
    opener: Opener,
) -> None:
    store = opener()
    (only,) = transaction(1)
    await store.save(only)
    only.set_data(b"Subject: edited\r\n\r\nedited\r\n")
    await store.save(only)
    assert await data_keys(store) == [only.id]
    await store.remove(only)
    assert await data_keys(store) == []


async def test_a_message_saved_again_with_its_shared_body_counts_once(opener: Opener) -> None:
    # Saved again unchanged (a requeue, a rebind): still one user of the body, so the
    # body goes with the transaction's last message.
    store = opener()
    one, two = transaction(2)
    for message in (one, two, one):
        await store.save(message)
    (body_key,) = await data_keys(store)
    assert store.shared_bodies() == {body_key: 2}
    await store.remove(one)
    await store.remove(two)
    assert await data_keys(store) == []
