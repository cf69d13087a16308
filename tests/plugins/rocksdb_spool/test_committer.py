"""One commit cycle for a message's body and its commit marker, body synced first."""

from __future__ import annotations

import asyncio
import collections
import os
import statistics
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kumocore_rocksdb_spool import RocksDBSpool

from kumocore.mail.body import SharedBody
from kumocore.mail.message import Message
from kumocore.spool import MemorySpool, OrderedDeletes, OrderedPuts
from kumocore.spool.commit import committer_for
from kumocore.spool.commit.deferred import WAIT_BOUND
from kumocore.spool.recovering import RecoveringSpool
from kumocore.spool.store import MessageStore
from tests.plugins.rocksdb_spool.recording import RecordingDb, failing_write


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[RocksDBSpool, RocksDBSpool, list[str]]]:
    events: list[str] = []
    data = RocksDBSpool("data", str(tmp_path / "data"))
    meta = RocksDBSpool("meta", str(tmp_path / "meta"))
    data._db = RecordingDb(data._db, events, "data ")  # type: ignore[assignment]
    meta._db = RecordingDb(meta._db, events, "meta ")  # type: ignore[assignment]
    yield data, meta, events
    await data.close()
    await meta.close()


async def test_put_before_syncs_the_body_before_writing_the_marker_in_one_cycle(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, events = pair
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    assert events == ["data write", "data synced=True", "meta write", "meta synced=True"]
    assert committer_for(asyncio.get_running_loop()).cycles == 1
    assert (await data.get("m1"), await meta.get("m1")) == (b"body", b"envelope")


async def test_concurrent_pairs_share_a_cycle_and_one_sync_per_spool(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, events = pair
    await asyncio.gather(*(
        data.put_before(f"m{i}", b"b%d" % i, meta, f"m{i}", b"e%d" % i) for i in range(50)))
    assert (data.syncs, meta.syncs) == (1, 1)
    assert events == ["data write", "data synced=True", "meta write", "meta synced=True"]
    assert [await meta.get(f"m{i}") for i in (0, 49)] == [b"e0", b"e49"]


async def test_the_marker_spool_writing_first_does_not_put_it_before_the_body(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, events = pair
    alone = asyncio.ensure_future(meta.put("other", b"x"))  # meta registers first
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    await alone
    assert events == ["data write", "data synced=True", "meta write", "meta synced=True"]


async def _until(check: Any, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check() and time.monotonic() < deadline:
        await asyncio.sleep(0.002)


async def _wait_gone(spool: Any, key: str) -> None:
    """Until ``key`` is gone from ``spool`` (a body's delete waits for its marker's sync)."""

    async def gone() -> bool:
        return await spool.get(key) is None

    await _until(gone)


async def test_a_body_is_deleted_only_after_the_deletion_of_its_marker_is_synced(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    """Else a crash after the body's spool synced (for other writes) could keep the
    marker, its delete not synced, and lose the body: a delivered message set aside."""
    data, meta, events = pair
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    events.clear()
    started = time.monotonic()
    # The marker's delete is written, not synced (a delete need not be); the body's
    # waits for that sync, and the call returns once both are queued.
    await data.delete_after("m1", meta, "m1")
    assert events == ["meta write"]
    assert await data.get("m1") == b"body"

    await _wait_gone(data, "m1")
    # Nothing else synced the markers' spool: it was synced for the waiting delete.
    assert events == ["meta write", "meta synced=True", "data write"]
    assert time.monotonic() - started >= WAIT_BOUND


async def test_a_body_delete_waits_only_for_the_next_marker_sync_under_load(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, events = pair
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    events.clear()
    syncs = meta.syncs
    await asyncio.gather(data.delete_after("m1", meta, "m1"),
                         data.put_before("m2", b"b2", meta, "m2", b"e2"))

    await _wait_gone(data, "m1")
    # The new marker's sync covered the old marker's delete: no sync of its own, and
    # the body's delete came right after it.
    assert events[-3:] == ["meta write", "meta synced=True", "data write"]
    assert events.count("meta synced=True") == 1
    assert meta.syncs == syncs + 1


async def test_closing_the_markers_spool_first_still_writes_the_waiting_body_deletes(
    tmp_path: Path,
) -> None:
    data = RocksDBSpool("data", str(tmp_path / "data"))
    meta = RocksDBSpool("meta", str(tmp_path / "meta"))
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    await data.delete_after("m1", meta, "m1")  # the body's delete waits for meta's sync
    await meta.close()  # syncs it, and writes the body's delete first
    await data.close()
    data = RocksDBSpool("data", str(tmp_path / "data"))
    meta = RocksDBSpool("meta", str(tmp_path / "meta"))
    assert (await data.get("m1"), await meta.get("m1")) == (None, None)
    await data.close()
    await meta.close()


async def test_a_markers_spool_that_fails_its_sync_neither_spins_the_writer_nor_stays_open(
    tmp_path: Path,
) -> None:
    """A full disk: the sync that waiting deletes are owed keeps failing. The thread must
    not retry it in a loop, and the spool must close (RecoveringSpool reopens it)."""
    data = RocksDBSpool("data", str(tmp_path / "data"))
    meta = RocksDBSpool("meta", str(tmp_path / "meta"))
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    attempts = 0

    def full_disk(ops: object, sync: bool) -> None:
        nonlocal attempts
        attempts += 1
        raise OSError("No space left on device")

    await data.delete_after("m1", meta, "m1")  # the marker's delete is written, unsynced
    meta._write = full_disk  # type: ignore[method-assign]
    await asyncio.sleep(5 * WAIT_BOUND)
    assert attempts == 1  # the sync owed to the body's delete, tried once
    assert await data.get("m1") == b"body"  # dropped: collected at the next start
    await meta.close()  # nothing is owed any more: it closes without retrying
    assert attempts == 1
    reopened = RocksDBSpool("meta", str(tmp_path / "meta"))  # the lock was released
    assert await reopened.get("m1") is None  # closing flushed its memtable
    await reopened.close()
    await data.close()


async def test_a_spool_whose_last_sync_fails_at_close_is_closed_all_the_same(
    tmp_path: Path,
) -> None:
    """Else its database stayed open, holding RocksDB's lock, and RecoveringSpool could
    never open it again once the disk had room."""
    data = RocksDBSpool("data", str(tmp_path / "data"))
    meta = RocksDBSpool("meta", str(tmp_path / "meta"))
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    await data.delete_after("m1", meta, "m1")  # meta now owes a sync to the body's delete
    meta._write = failing_write("No space left on device")  # type: ignore[method-assign]
    await meta.close()  # the sync owed fails inside close
    reopened = RocksDBSpool("meta", str(tmp_path / "meta"))
    await reopened.close()
    await data.close()


async def test_a_failed_body_write_leaves_the_marker_and_the_rest_of_the_cycle_unwritten(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, _ = pair

    data._write = failing_write("disk on fire")  # type: ignore[method-assign]
    results = await asyncio.gather(
        data.put_before("m1", b"body", meta, "m1", b"envelope"),
        meta.put("unrelated", b"x"),  # same cycle, written after the failed spool: not at all
        return_exceptions=True,
    )
    assert all(isinstance(r, OSError) and "disk on fire" in str(r) for r in results)
    assert await meta.get("m1") is None
    assert await meta.get("unrelated") is None


async def test_a_failed_marker_write_still_acknowledges_tickets_that_were_written(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, _ = pair

    meta._write = failing_write("meta disk on fire")  # type: ignore[method-assign]
    body_only, both = await asyncio.gather(
        data.put("body-only", b"b"),
        data.put_before("m1", b"body", meta, "m1", b"envelope"),
        return_exceptions=True,
    )
    assert body_only is None
    assert isinstance(both, OSError)


async def test_the_opposite_order_is_written_one_spool_after_the_other(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, events = pair
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    events.clear()
    await meta.put_before("m2", b"first", data, "m2", b"second")  # data is ordered first
    assert events == ["meta write", "meta synced=True", "data write", "data synced=True"]
    assert committer_for(asyncio.get_running_loop()).cycles == 3


async def test_put_before_another_kind_of_spool_writes_one_after_the_other(
    tmp_path: Path,
) -> None:
    data = RocksDBSpool("data", str(tmp_path / "data"))
    meta = MemorySpool("meta")
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    assert (await data.get("m1"), await meta.get("m1")) == (b"body", b"envelope")
    await data.close()


async def test_closing_one_spool_leaves_the_other_writing_and_the_last_stops_the_thread(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, _ = pair
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    committer = committer_for(asyncio.get_running_loop())
    thread = committer._thread
    assert thread is not None and thread.is_alive()
    await meta.close()
    await data.put("m2", b"more")
    assert await data.get("m2") == b"more"
    await data.close()
    assert not thread.is_alive()


async def test_the_store_saves_a_message_in_one_cycle_through_recovering_spools(
    tmp_path: Path,
) -> None:
    data = RecoveringSpool(lambda: RocksDBSpool("data", str(tmp_path / "data")))
    meta = RecoveringSpool(lambda: RocksDBSpool("meta", str(tmp_path / "meta")))
    assert isinstance(data.inner, OrderedPuts)
    store = MessageStore(data, meta)
    before = committer_for(asyncio.get_running_loop()).cycles
    message = Message("a@s.test", "r@example.com", b"Subject: x\r\n\r\nbody\r\n")
    await store.save(message)
    assert committer_for(asyncio.get_running_loop()).cycles == before + 1
    assert await data.get(message.id) == message.data
    assert await meta.get(message.id) == message.meta_bytes()
    await store.close()


async def test_the_store_removes_a_message_in_one_cycle_and_its_body_after_the_marker_sync(
    tmp_path: Path,
) -> None:
    events: list[str] = []
    data = RecoveringSpool(lambda: RocksDBSpool("data", str(tmp_path / "data")))
    meta = RecoveringSpool(lambda: RocksDBSpool("meta", str(tmp_path / "meta")))
    data.inner._db = RecordingDb(data.inner._db, events, "data ")  # type: ignore[attr-defined]
    meta.inner._db = RecordingDb(meta.inner._db, events, "meta ")  # type: ignore[attr-defined]
    assert isinstance(data.inner, OrderedDeletes)
    store = MessageStore(data, meta)
    message = Message("a@s.test", "r@example.com", b"Subject: x\r\n\r\nbody\r\n")
    await store.save(message)
    events.clear()
    before = committer_for(asyncio.get_running_loop()).cycles
    await store.remove(message.id)
    assert committer_for(asyncio.get_running_loop()).cycles == before + 1
    assert await meta.get(message.id) is None

    await _wait_gone(data, message.id)
    assert events == ["meta write", "meta synced=True", "data write"]
    await store.close()


async def test_a_shared_body_is_deleted_with_its_last_message_after_that_marker_sync(
    tmp_path: Path,
) -> None:
    """A transaction's messages share one body record, saved with plain puts: its delete
    waits for the last marker's delete to be synced all the same."""
    events: list[str] = []
    data = RocksDBSpool("data", str(tmp_path / "data"))
    meta = RocksDBSpool("meta", str(tmp_path / "meta"))
    data._db = RecordingDb(data._db, events, "data ")  # type: ignore[assignment]
    meta._db = RecordingDb(meta._db, events, "meta ")  # type: ignore[assignment]
    store = MessageStore(data, meta)
    shared = SharedBody(b"Subject: x\r\n\r\nbody\r\n")
    messages = [Message("a@s.test", f"r{n}@example.com", b"Received: x\r\n", shared=shared)
                for n in range(2)]
    for message in messages:
        await store.save(message)
    await store.remove(messages[0])
    events.clear()
    await store.remove(messages[1])
    assert await data.get(shared.key) is not None  # waits for the marker's sync

    await _wait_gone(data, shared.key)
    assert events == ["meta write", "meta synced=True", "data write"]
    await store.close()


async def test_a_failed_pair_reopens_both_spools_before_their_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = RecoveringSpool(lambda: RocksDBSpool("data", str(tmp_path / "data")))
    meta = RecoveringSpool(lambda: RocksDBSpool("meta", str(tmp_path / "meta")))

    data.inner._write = failing_write("disk on fire")  # type: ignore[attr-defined]
    with pytest.raises(OSError, match="disk on fire"):
        await data.put_before("m1", b"body", meta, "m1", b"envelope")
    old_data, old_meta = data.inner, meta.inner
    from kumocore.spool import recovering

    monkeypatch.setattr(recovering, "REOPEN_INTERVAL", 0.0)
    await data.put_before("m2", b"body", meta, "m2", b"envelope")
    assert data.inner is not old_data and meta.inner is not old_meta
    assert (data.reopened, meta.reopened) == (1, 1)
    assert await meta.get("m2") == b"envelope"
    await data.close()
    await meta.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling classes")
async def test_the_writer_thread_runs_as_a_batch_thread_that_does_not_preempt_the_loop(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, _ = pair
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    thread = committer_for(asyncio.get_running_loop())._thread
    assert thread is not None and thread.native_id is not None
    assert os.sched_getscheduler(thread.native_id) == os.SCHED_BATCH
    assert os.sched_getscheduler(0) != os.SCHED_BATCH  # the loop's own thread is untouched


async def _busy_loop(stop: asyncio.Event) -> None:
    """Python work between loop turns that never lets the loop wait: like a client
    pipelining commands, each turn polls (dropping the GIL for a moment) and goes on."""
    while not stop.is_set():
        deadline = time.perf_counter() + 0.00005
        while time.perf_counter() < deadline:
            pass
        await asyncio.sleep(0)


async def _commit_latencies(data: RocksDBSpool, meta: RocksDBSpool, count: int) -> list[float]:
    stop = asyncio.Event()
    busy = [asyncio.ensure_future(_busy_loop(stop)) for _ in range(4)]
    await asyncio.sleep(0.05)
    latencies = []
    try:
        for i in range(count):
            started = time.perf_counter()
            await data.put_before(f"m{i}", b"body", meta, f"m{i}", b"envelope")
            latencies.append(time.perf_counter() - started)
    finally:
        stop.set()
        await asyncio.gather(*busy)
    return latencies


@pytest.mark.serial  # a latency bound: measured on a machine not running other tests
async def test_a_loop_that_never_waits_still_gets_its_commits_within_milliseconds(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    """Without the hand-over the writer thread starved: medians of 100-500 ms here."""
    data, meta, _ = pair
    latencies = await _commit_latencies(data, meta, 15)
    assert statistics.median(latencies) < 0.05, [round(x * 1000, 1) for x in latencies]


def test_an_order_that_contradicts_the_pairs_so_far_is_refused() -> None:
    from kumocore.spool.commit.committer import Committer

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def _write(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
            raise AssertionError("not written in this test")

    a, b, c = Named("a"), Named("b"), Named("c")
    committer = Committer()
    assert committer.order(a, b) and committer.order(b, c)
    assert committer._order == [a, b, c]
    assert not committer.order(c, a)  # would have to break a-before-b or b-before-c
    assert not committer.order(b, a)
    assert committer._order == [a, b, c]


async def test_put_before_a_spool_of_another_committer_writes_one_after_the_other(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    """As for a spool first written from another loop: its committer is not this one."""
    from kumocore.spool.commit.committer import Committer

    data, meta, events = pair
    meta._committer = other = Committer()
    other.register(meta)
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    assert events == ["data write", "data synced=True", "meta write", "meta synced=True"]
    assert (committer_for(asyncio.get_running_loop()).cycles, other.cycles) == (1, 1)
    assert meta not in committer_for(asyncio.get_running_loop())._order
    assert await meta.get("m1") == b"envelope"


async def test_what_arrives_during_a_cycle_is_written_next_without_waiting_for_the_loop(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    """The thread takes the next cycle itself as soon as it has handed one back: here the
    loop does not run at all between the two cycles, and both are on disk."""
    data, meta, events = pair
    gate = threading.Event()
    writing = threading.Event()

    class HeldDb(RecordingDb):
        def write(self, batch: Any, opts: Any) -> None:
            writing.set()
            gate.wait(5)  # the first cycle's body write waits for the second to queue
            super().write(batch, opts)

    data._db = HeldDb(data._db.db, events, "data ")  # type: ignore[attr-defined,assignment]
    first = asyncio.ensure_future(data.put_before("m1", b"b1", meta, "m1", b"e1"))
    while not writing.is_set():
        await asyncio.sleep(0.001)
    second = asyncio.ensure_future(data.put_before("m2", b"b2", meta, "m2", b"e2"))
    await asyncio.sleep(0)  # the second ticket is queued to the thread
    gate.set()
    time.sleep(0.5)  # the loop is busy: it neither settles the first cycle nor dispatches
    assert events == ["data write", "data synced=True", "meta write", "meta synced=True"] * 2
    await asyncio.gather(first, second)
    assert committer_for(asyncio.get_running_loop()).cycles == 2
    assert [await meta.get(key) for key in ("m1", "m2")] == [b"e1", b"e2"]


async def _saved_messages(store: MessageStore, count: int) -> list[Message]:
    """``count`` small messages, each saved (its meta and its body) through ``store``."""
    messages = [Message("a@s.test", f"r{n}@example.com", b"Subject: x\r\n\r\nx\r\n")
                for n in range(count)]  # fmt: skip
    await asyncio.gather(*map(store.save, messages))
    return messages


async def test_many_messages_removed_at_once_take_one_cycle_and_their_bodies_wait_for_it(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    """An admin bounce's batch (MessageStore.remove_many): every marker's delete in one
    write, every body's after the markers' sync, as one message's are."""
    data, meta, events = pair
    store = MessageStore(data, meta)
    messages = await _saved_messages(store, 200)
    events.clear()
    before = committer_for(asyncio.get_running_loop()).cycles
    await store.remove_many([m.id for m in messages])
    assert committer_for(asyncio.get_running_loop()).cycles == before + 1
    assert events == ["meta write"]
    assert [key async for key in meta.keys()] == []  # noqa: SIM118 (a spool)

    await _wait_gone(data, messages[-1].id)
    assert events == ["meta write", "meta synced=True", "data write"]
    assert [key async for key in data.keys()] == []  # noqa: SIM118 (a spool)


async def test_many_metas_saved_at_once_take_one_synced_write(
    pair: tuple[RocksDBSpool, RocksDBSpool, list[str]],
) -> None:
    data, meta, events = pair
    store = MessageStore(data, meta)
    messages = await _saved_messages(store, 200)
    events.clear()
    for message in messages:
        message.meta["tenant"] = "acme"
    await store.save_metas(messages)
    assert events == ["meta write", "meta synced=True"]
    assert all([b"acme" in (await meta.get(m.id) or b"") for m in messages])


async def test_lists_of_writes_go_through_the_reopening_wrapper_as_one_write_each(
    tmp_path: Path,
) -> None:
    data = RecoveringSpool(lambda: RocksDBSpool("data", str(tmp_path / "data")))
    meta = RecoveringSpool(lambda: RocksDBSpool("meta", str(tmp_path / "meta")))
    store = MessageStore(data, meta)
    messages = [Message("a@s.test", f"r{n}@example.com", b"Subject: x\r\n\r\nx\r\n")
                for n in range(50)]  # fmt: skip
    await asyncio.gather(*map(store.save, messages))
    before = committer_for(asyncio.get_running_loop()).cycles
    await store.save_metas(messages)
    await store.remove_many([m.id for m in messages])
    assert committer_for(asyncio.get_running_loop()).cycles == before + 2
    assert [key async for key in meta.keys()] == []  # noqa: SIM118 (a spool)
    await _wait_gone(data, messages[-1].id)
    await store.close()


async def test_a_cycle_of_a_thousand_tickets_wakes_its_writers_a_slice_per_turn_of_the_loop(
    tmp_path: Path,
) -> None:
    """A bulk operation's writes come back as one cycle; its writers are woken at most
    SETTLE_PER_TURN a turn, so another client waits for a slice, not for all of them.
    (Settled at once, all 1,000 were woken in one turn.)"""
    from kumocore.spool.commit.committer import SETTLE_PER_TURN

    spool = RocksDBSpool("meta", str(tmp_path / "meta"))
    loop = asyncio.get_running_loop()
    turns = [0]
    done = asyncio.Event()

    def count_turns() -> None:  # once per turn of the loop, while the writes are out
        turns[0] += 1
        if not done.is_set():
            loop.call_soon(count_turns)

    woken_on: list[int] = []

    async def write(n: int) -> None:
        await spool.put(f"k{n}", b"v")
        woken_on.append(turns[0])

    try:
        count_turns()
        await asyncio.gather(*(write(n) for n in range(1000)))
        done.set()
        per_turn = collections.Counter(woken_on)
        assert len(woken_on) == 1000 and await spool.get("k999") == b"v"
        assert max(per_turn.values()) <= SETTLE_PER_TURN, per_turn
        assert committer_for(loop).cycles < 1000 / SETTLE_PER_TURN  # still shared cycles
    finally:
        await spool.close()
