from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from kumocore_lmdb_spool import LmdbSpool, LmdbSpoolPlugin, make_lmdb_spool
from kumocore_rocksdb_spool import RocksDBSpool

from kumocore import ConfigError
from kumocore.policy.hooks import Hooks
from kumocore.policy.plugins import make_plugin_manager
from kumocore.spool.commit import committer_for
from tests.plugins.lmdb_spool.rss import rss_file_kib


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[LmdbSpool]:
    s = LmdbSpool("data", str(tmp_path / "data"))
    yield s
    await s.close()


async def keys_of(spool: LmdbSpool) -> list[str]:
    return [key async for key in spool.keys()]  # noqa: SIM118 (a spool, not a dict)


def test_plugin_registers_the_lmdb_kind_through_a_fresh_plugin_manager() -> None:
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("lmdb", LmdbSpoolPlugin())])
    assert Hooks(pm).spool_kinds()["LMDB"] is make_lmdb_spool


def test_plugin_is_installed_as_an_entry_point() -> None:
    (ep,) = entry_points(group="kumocore", name="lmdb_spool")
    assert ep.load() is LmdbSpoolPlugin


def test_importing_the_plugin_does_not_import_lmdb() -> None:
    code = "import kumocore_lmdb_spool, sys; print('lmdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_scan_and_keys_yield_every_record_in_key_order_across_chunks(
    spool: LmdbSpool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kumocore_lmdb_spool.spool as module

    monkeypatch.setattr(module, "_SCAN_CHUNK_ITEMS", 64)
    keys = [f"{n:05d}" for n in range(700)]  # eleven chunks
    await asyncio.gather(*(spool.put(key, key.encode() * 3) for key in reversed(keys)))
    assert [(k, v) async for k, v in spool.scan()] == [(k, k.encode() * 3) for k in keys]
    assert await keys_of(spool) == keys


async def test_a_delete_without_a_sync_is_hidden_at_once_and_written_with_the_next_put(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "data")
    spool = LmdbSpool("data", path)
    await spool.put("gone", b"1")
    await spool.put("kept", b"2")
    syncs = spool.syncs
    await spool.delete("gone")
    assert spool.syncs == syncs  # deletes alone are not synced...
    assert await spool.get("gone") is None  # ...but no read sees the record any more
    assert await keys_of(spool) == ["kept"]
    assert [k async for k, _ in spool.scan()] == ["kept"]
    await spool.put("next", b"3")  # the held delete goes into this transaction
    assert not spool.held.snapshot()
    await spool.close()
    reopened = LmdbSpool("data", path)
    try:
        assert await keys_of(reopened) == ["kept", "next"]
    finally:
        await reopened.close()


async def test_a_key_put_again_after_its_held_delete_is_stored(spool: LmdbSpool) -> None:
    await spool.put("k", b"old")
    await spool.delete("k")
    await spool.put("k", b"new")
    assert await spool.get("k") == b"new"
    assert await keys_of(spool) == ["k"]


async def test_close_writes_the_held_deletes(tmp_path: Path) -> None:
    path = str(tmp_path / "data")
    spool = LmdbSpool("data", path)
    await spool.put("a", b"1")
    await spool.delete("a")
    await spool.close()
    reopened = LmdbSpool("data", path)
    try:
        assert await reopened.get("a") is None
        assert await keys_of(reopened) == []
    finally:
        await reopened.close()


async def test_concurrent_puts_share_a_transaction_and_all_survive_reopening(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "data")
    spool = LmdbSpool("data", path)
    await asyncio.gather(*(spool.put(f"k{n:03d}", b"v" * 100_000) for n in range(100)))
    assert spool.records == 100
    assert spool.syncs < 100  # group commit
    await spool.close()
    reopened = LmdbSpool("data", path)
    try:
        assert len(await keys_of(reopened)) == 100
        assert await reopened.get("k042") == b"v" * 100_000
    finally:
        await reopened.close()


async def test_a_body_here_and_its_marker_in_rocksdb_are_written_in_one_cycle(
    tmp_path: Path,
) -> None:
    data = LmdbSpool("data", str(tmp_path / "data"))
    meta = RocksDBSpool("meta", str(tmp_path / "meta"))
    try:
        committer = committer_for(asyncio.get_running_loop())
        cycles = committer.cycles
        await data.put_before("m1", b"body", meta, "m1", b"envelope")
        assert committer.cycles == cycles + 1
        assert (data.syncs, meta.syncs) == (1, 1)
        assert await data.get("m1") == b"body"
        assert await meta.get("m1") == b"envelope"
        await data.delete_after("m1", meta, "m1")  # the marker first, then the body
        await committer.flush()
        assert await meta.get("m1") is None
        assert await data.get("m1") is None
    finally:
        await data.close()
        await meta.close()


async def test_a_write_that_lmdb_refuses_fails_its_caller_and_the_spool_goes_on(
    spool: LmdbSpool,
) -> None:
    import lmdb

    with pytest.raises(lmdb.BadValsizeError):
        await spool.put("k" * 600, b"too long a key for LMDB")  # LMDB's limit: 511 bytes
    await spool.put("ok", b"1")
    assert await spool.get("ok") == b"1"


async def test_close_refuses_new_writes(spool: LmdbSpool) -> None:
    await spool.close()
    with pytest.raises(RuntimeError, match="closed"):
        await spool.put("k", b"v")


def test_a_path_that_cannot_be_opened_is_a_config_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=f"cannot open LMDB spool 'data' at path '{blocker}"):
        LmdbSpool("data", str(blocker))


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"flush": True}, "does not take 'flush = true'"),
     ({"rocks_params": {"increase_parallelism": 4}}, "'rocks_params' is for kind 'RocksDB'")],
)
def test_options_this_kind_cannot_honour_are_refused(
    tmp_path: Path, options: dict[str, object], problem: str,
) -> None:
    with pytest.raises(ConfigError, match=problem):
        make_lmdb_spool(name="data", path=str(tmp_path), **options)  # type: ignore[arg-type]


async def test_factory_accepts_the_kind_independent_options(tmp_path: Path) -> None:
    spool = make_lmdb_spool(name="data", path=str(tmp_path / "d"), flush=False, rocks_params={},
                            min_free_space="10%")
    try:
        await spool.put("k", b"v")
        assert await spool.get("k") == b"v"
    finally:
        await spool.close()


async def test_a_rocksdb_spool_path_is_refused_naming_its_files(tmp_path: Path) -> None:
    rocks = RocksDBSpool("data", str(tmp_path / "data"))
    await rocks.put("m1", b"a body that must not be orphaned")
    await rocks.close()
    with pytest.raises(ConfigError, match=r"holds files that are not an LMDB spool \(\d+\.log, "):
        LmdbSpool("data", str(tmp_path / "data"))


async def test_a_rocksdb_spool_refuses_a_path_that_holds_an_lmdb_spool(tmp_path: Path) -> None:
    lmdb_spool = LmdbSpool("data", str(tmp_path / "data"))
    await lmdb_spool.put("m1", b"a body that must not be orphaned")
    await lmdb_spool.close()
    with pytest.raises(ConfigError, match="holds an LMDB spool"):
        RocksDBSpool("data", str(tmp_path / "data"))


async def test_worker_shard_directories_beside_the_spool_are_its_own(tmp_path: Path) -> None:
    (tmp_path / "data" / "worker-0").mkdir(parents=True)
    (tmp_path / "data" / "worker-1").mkdir()
    spool = LmdbSpool("data", str(tmp_path / "data"))
    await spool.close()


async def test_listing_the_keys_does_not_read_the_records(tmp_path: Path) -> None:
    """The orphan collection lists every key at start-up: with a million bodies, reading
    their pages would put gigabytes of them into the RSS (and read them from disk), and
    even the pages next to the keys' ones come in with them."""
    warm = LmdbSpool("warm", str(tmp_path / "warm"))  # the code paths, threads...
    await warm.put("k", b"v")
    assert await keys_of(warm) == ["k"]
    await warm.close()
    path = str(tmp_path / "data")
    spool = LmdbSpool("data", path)
    # 2 KB bodies, a page each, so that the keys' pages lie among them and Linux's
    # fault-around (the cached pages next to one read) would map many of them.
    body = b"b" * 2_100
    for start in range(0, 40_000, 4_000):  # 160 MB of pages, still in the page cache
        await asyncio.gather(*(spool.put(f"{n:032x}", body) for n in range(start, start + 4_000)))
    await spool.close()
    reopened = LmdbSpool("data", path)
    try:
        before = rss_file_kib()
        assert len(await keys_of(reopened)) == 40_000
        assert rss_file_kib() - before < 10_000  # the records are 160,000 KiB
    finally:
        await reopened.close()


async def test_held_deletes_past_their_bound_are_written_at_once(
    spool: LmdbSpool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backlog draining with no new mail must not grow the held set without end."""
    import kumocore_lmdb_spool.environment as module

    monkeypatch.setattr(module, "HELD_DELETES", 10)
    await asyncio.gather(*(spool.put(f"k{n:02d}", b"v") for n in range(25)))
    syncs = spool.syncs
    for n in range(9):
        await spool.delete(f"k{n:02d}")
    assert spool.syncs == syncs and len(spool.held.snapshot()) == 9  # held, under the bound
    await spool.delete("k09")  # the tenth: at the bound, written with the others
    assert spool.held.snapshot() == set()
    for n in range(10, 25):  # and so on, however many come
        await spool.delete(f"k{n:02d}")
    assert len(spool.held.snapshot()) < 10
    assert len(await keys_of(spool)) == 0
