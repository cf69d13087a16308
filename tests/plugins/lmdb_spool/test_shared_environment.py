"""Two LMDB spools at one path: one environment, one transaction per commit cycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kumocore_lmdb_spool import LmdbSpool
from kumocore_lmdb_spool.environment import LEGACY, SharedEnvironment, _registry

from kumocore import ConfigError
from kumocore.spool.commit import committer_for
from tests.plugins.lmdb_spool.rss import rss_file_kib

Pair = tuple[LmdbSpool, LmdbSpool]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    path = str(tmp_path / "spool")
    data, meta = LmdbSpool("data", path), LmdbSpool("meta", path)
    yield data, meta
    await data.close()
    await meta.close()


def _last_transaction(spool: LmdbSpool) -> int:
    last: int = spool._env.info()["last_txnid"]
    return last


async def test_two_spools_at_one_path_share_one_environment_and_keep_their_records_apart(
    pair: Pair,
) -> None:
    data, meta = pair
    assert data._environment is meta._environment and data.commit_group is meta.commit_group
    await data.put("m1", b"body")
    await meta.put("m1", b"envelope")
    assert (await data.get("m1"), await meta.get("m1")) == (b"body", b"envelope")
    await meta.delete("m1")
    await committer_for(asyncio.get_running_loop()).flush()
    assert (await data.get("m1"), await meta.get("m1")) == (b"body", None)
    assert [key async for key in data.keys()] == ["m1"]  # noqa: SIM118 (a spool)
    assert [key async for key, _ in meta.scan()] == []


async def test_a_body_and_its_envelope_at_one_path_are_one_transaction_and_one_cycle(
    pair: Pair,
) -> None:
    data, meta = pair
    committer = committer_for(asyncio.get_running_loop())
    await data.put("warm", b"up")  # the writer thread is running and idle
    cycles, transactions = committer.cycles, _last_transaction(data)
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    assert committer.cycles == cycles + 1
    assert _last_transaction(data) == transactions + 1  # with a RocksDB meta: two syncs
    assert (data.records, meta.records) == (2, 1)


async def test_a_refused_envelope_fails_its_caller_and_leaves_no_body_behind(
    pair: Pair,
) -> None:
    """Atomic together: the body is in the same transaction as the envelope LMDB refuses,
    so neither is stored (two stores would have synced the body already)."""
    import lmdb

    data, meta = pair
    with pytest.raises(lmdb.BadValsizeError):
        await data.put_before("m1", b"body", meta, "k" * 600, b"envelope")
    assert await data.get("m1") is None
    await data.put_before("m2", b"body", meta, "m2", b"envelope")  # and both go on
    assert (await data.get("m2"), await meta.get("m2")) == (b"body", b"envelope")


async def test_records_of_both_spools_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "spool")
    data, meta = LmdbSpool("data", path), LmdbSpool("meta", path)
    await asyncio.gather(*(data.put_before(f"m{n}", b"b" * 50_000, meta, f"m{n}", b"e")
                           for n in range(50)))
    await data.close()
    await meta.close()
    assert str(Path(path).resolve()) not in _registry  # closed with its last spool
    meta, data = LmdbSpool("meta", path), LmdbSpool("data", path)  # either order
    try:
        assert len([key async for key in data.keys()]) == 50  # noqa: SIM118
        assert {value async for _, value in meta.scan()} == {b"e"}
        assert await data.get("m7") == b"b" * 50_000
    finally:
        await data.close()
        await meta.close()


async def test_one_spool_reopened_while_the_other_stays_open_finds_its_records(
    pair: Pair, tmp_path: Path,
) -> None:
    """As RecoveringSpool reopens a spool after a failed write."""
    data, meta = pair
    await data.put_before("m1", b"body", meta, "m1", b"envelope")
    await meta.close()
    assert await data.get("m1") == b"body"  # the environment stays open for data
    again = LmdbSpool("meta", str(tmp_path / "spool"))
    try:
        assert again._environment is data._environment
        assert await again.get("m1") == b"envelope"
        await data.put_before("m2", b"body", again, "m2", b"envelope")
        assert await again.get("m2") == b"envelope"
    finally:
        await again.close()


def test_a_spool_opened_twice_at_one_path_is_a_config_error(tmp_path: Path) -> None:
    path = str(tmp_path / "spool")
    shared, _ = SharedEnvironment.attach("data", path)
    with pytest.raises(ConfigError, match="'data' is already open"):
        SharedEnvironment.attach("data", path)
    shared.detach("data")


def _legacy_environment(path: Path) -> None:
    """An environment as the LMDB kind wrote it before spools could share one."""
    import lmdb

    path.mkdir()
    env = lmdb.open(str(path), max_dbs=2)
    bodies, ids = env.open_db(LEGACY[0]), env.open_db(LEGACY[1])
    with env.begin(write=True) as txn:
        txn.put(b"m1", b"old body", db=bodies)
        txn.put(b"m1", b"", db=ids)
    env.close()


async def test_a_single_spool_environment_keeps_its_records_and_refuses_a_second_spool(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool"
    _legacy_environment(path)
    data = LmdbSpool("data", str(path))
    try:
        assert await data.get("m1") == b"old body"
        assert [key async for key in data.keys()] == ["m1"]  # noqa: SIM118
        with pytest.raises(ConfigError, match="'meta' cannot share the LMDB spool at path"):
            LmdbSpool("meta", str(path))
        await data.put("m2", b"new body")  # the refusal left data as it was
    finally:
        await data.close()
    reopened = LmdbSpool("data", str(path))
    try:
        assert await reopened.get("m2") == b"new body"
    finally:
        await reopened.close()


async def test_scanning_the_envelopes_does_not_keep_the_bodies_pages_beside_them(
    tmp_path: Path,
) -> None:
    """Recovery reads every envelope at start-up; among a million bodies, the pages that
    Linux maps around each read would put the bodies into the RSS."""
    path = str(tmp_path / "spool")
    data, meta = LmdbSpool("data", path), LmdbSpool("meta", path)
    body, envelope = b"b" * 2_100, b"e" * 600
    for start in range(0, 40_000, 4_000):  # 160 MB of bodies, still in the page cache
        await asyncio.gather(*(data.put_before(f"{n:032x}", body, meta, f"{n:032x}", envelope)
                               for n in range(start, start + 4_000)))
    await data.close()
    await meta.close()
    data, meta = LmdbSpool("data", path), LmdbSpool("meta", path)
    try:
        before = rss_file_kib()
        assert sum([len(chunk) async for chunk in meta.scan_chunks()]) == 40_000
        assert rss_file_kib() - before < 12_000  # bodies 160,000 KiB, envelopes 28,000
    finally:
        await data.close()
        await meta.close()


async def test_a_store_saves_and_removes_lists_of_messages_here_and_both_survive_reopening(
    tmp_path: Path,
) -> None:
    """An admin bounce's and a rebind's lists (MessageStore.remove_many, save_metas)
    through one environment's transactions."""
    from kumocore.mail.message import Message
    from kumocore.spool.store import MessageStore

    path = str(tmp_path / "spool")
    store = MessageStore(LmdbSpool("data", path), LmdbSpool("meta", path))
    messages = [Message("a@s.test", f"r{n}@example.com", b"Subject: x\r\n\r\nx\r\n")
                for n in range(300)]  # fmt: skip
    await asyncio.gather(*map(store.save, messages))
    for message in messages[:100]:
        message.meta["tenant"] = "acme"
    await store.save_metas(messages[:100])
    await store.remove_many([m.id for m in messages[100:]])
    await store.close()
    again = MessageStore(LmdbSpool("data", path), LmdbSpool("meta", path))
    recovered: list[Message] = []
    await again.recover_all(recovered)
    assert {m.id: m.meta.get("tenant") for m in recovered} == {
        m.id: "acme" for m in messages[:100]}
    assert len([key async for key in again.data.keys()]) == 100  # noqa: SIM118 (a spool)
    await again.close()
