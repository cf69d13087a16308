from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from kumocore_rocksdb_spool import RocksDBSpool, RocksDBSpoolPlugin, make_rocksdb_spool

from kumocore import ConfigError
from kumocore.mail.ids import new_message_id
from kumocore.mail.message import Message
from kumocore.policy.hooks import Hooks
from kumocore.policy.plugins import make_plugin_manager
from tests.plugins.rocksdb_spool.recording import RecordingDb, failing_write


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[RocksDBSpool]:
    s = RocksDBSpool("data", str(tmp_path / "data"))
    yield s
    await s.close()


async def collect(spool: RocksDBSpool) -> list[tuple[str, bytes]]:
    return [item async for item in spool.scan()]


def test_plugin_registers_the_rocksdb_kind_through_a_fresh_plugin_manager() -> None:
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("rocks", RocksDBSpoolPlugin())])
    assert Hooks(pm).spool_kinds()["RocksDB"] is make_rocksdb_spool


def test_plugin_is_installed_as_an_entry_point() -> None:
    (ep,) = entry_points(group="kumocore", name="rocksdb_spool")
    assert ep.load() is RocksDBSpoolPlugin


def test_importing_the_plugin_does_not_import_rocksdict() -> None:
    import subprocess

    code = "import kumocore_rocksdb_spool, sys; print('rocksdict' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    import kumocore_rocksdb_spool.spool as module

    monkeypatch.setattr(module, "_SCAN_CHUNK_ITEMS", 64)
    return 64


async def test_scan_yields_every_record_in_key_order_across_chunks(
    spool: RocksDBSpool, small_chunks: int
) -> None:
    ids = [new_message_id() for _ in range(700)]  # eleven scan chunks
    await asyncio.gather(*(spool.put(i, i.encode() * 3) for i in reversed(ids)))
    items = await collect(spool)
    assert [k for k, _ in items] == sorted(ids)
    assert all(v == k.encode() * 3 for k, v in items)
    keys = spool.keys()
    assert [k async for k in keys] == sorted(ids)


async def test_scan_chunks_are_bounded_and_resume_after_a_key_deleted_meanwhile(
    spool: RocksDBSpool, small_chunks: int
) -> None:
    ids = sorted(new_message_id() for _ in range(300))
    await asyncio.gather(*(spool.put(i, b"x") for i in ids))
    seen: list[str] = []
    async for chunk in spool.scan_chunks():
        assert 0 < len(chunk) <= small_chunks
        seen += [key for key, _ in chunk]
        await spool.delete(chunk[-1][0])  # the key the next read resumes after
    assert seen == ids


async def test_an_abandoned_scan_leaves_the_spool_closable(
    spool: RocksDBSpool, small_chunks: int
) -> None:
    await asyncio.gather(*(spool.put(new_message_id(), b"x" * 100) for _ in range(500)))
    scan = spool.scan()
    async for _ in scan:
        break  # the next chunk is being read ahead
    await scan.aclose()
    await spool.close()
    with pytest.raises(RuntimeError, match="closed"):
        await spool.get("k")


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    first = RocksDBSpool("meta", str(tmp_path))
    msg = Message("a@example.org", "b@example.com", b"Subject: hi\r\n\r\nbody")
    await first.put(msg.id, msg.meta_bytes())
    await first.put("gone", b"x")
    await first.delete("gone")
    await first.close()
    second = RocksDBSpool("meta", str(tmp_path))
    try:
        items = await collect(second)
        assert [k for k, _ in items] == [msg.id]
        back = Message.from_spool(msg.id, items[0][1], msg.data)
        assert back.recipient == msg.recipient
    finally:
        await second.close()


async def test_concurrent_puts_are_group_committed_and_all_durable(tmp_path: Path) -> None:
    spool = RocksDBSpool("data", str(tmp_path))
    ids = [new_message_id() for _ in range(200)]
    await asyncio.gather(*(spool.put(i, i.encode() + b"\x00" * 2048) for i in ids))
    assert spool.records == 200
    assert spool.syncs < 20  # 200 puts shared a handful of syncs
    results = await asyncio.gather(*(spool.get(i) for i in ids))
    assert results == [i.encode() + b"\x00" * 2048 for i in ids]
    await spool.close()
    reopened = RocksDBSpool("data", str(tmp_path))
    assert len(await collect(reopened)) == 200
    await reopened.close()


async def test_puts_arriving_within_the_commit_window_share_one_sync(
    spool: RocksDBSpool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kumocore.spool.commit import committer as spool_module

    # A wide window, so that a busy test machine cannot stretch 10 ms past it.
    monkeypatch.setattr(spool_module, "COMMIT_WINDOW", 0.25)
    first = asyncio.ensure_future(spool.put("a", b"1"))
    await asyncio.sleep(0.01)  # several loop turns: without a window "a" would be synced
    assert not first.done()
    await spool.put("b", b"2")
    await first
    assert (spool.syncs, spool.records) == (1, 2)


async def test_a_put_after_the_window_went_by_takes_its_own_sync(spool: RocksDBSpool) -> None:
    await spool.put("a", b"1")
    await spool.put("b", b"2")
    assert (spool.syncs, spool.records) == (2, 2)


async def test_put_returns_only_after_the_wal_is_synced(spool: RocksDBSpool) -> None:
    events: list[str] = []
    spool._db = RecordingDb(spool._db, events)  # type: ignore[assignment]

    async def put(key: str) -> None:
        await spool.put(key, b"v")
        events.append(f"acked {key}")

    await asyncio.gather(put("a"), put("b"))
    assert events == ["write", "synced=True", "acked a", "acked b"]


async def test_deletes_alone_do_not_sync_the_wal(spool: RocksDBSpool) -> None:
    await spool.put("k", b"v")
    syncs = spool.syncs
    await asyncio.gather(*(spool.delete(f"k{i}") for i in range(10)))
    assert spool.syncs == syncs


async def test_a_cancelled_put_does_not_break_the_batch(spool: RocksDBSpool) -> None:
    tasks = [asyncio.create_task(spool.put(f"k{i:03d}", b"v")) for i in range(50)]
    await asyncio.sleep(0)
    tasks[10].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(t.done() for t in tasks)
    assert await spool.get("k049") == b"v"


async def test_a_write_failure_is_reported_to_every_caller_in_the_batch(
    spool: RocksDBSpool,
) -> None:
    spool._write = failing_write("disk on fire")  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(spool.put(f"k{i}", b"v") for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, OSError) and "disk on fire" in str(r) for r in results)


async def test_close_commits_pending_writes_and_refuses_new_ones(tmp_path: Path) -> None:
    spool = RocksDBSpool("data", str(tmp_path))
    pending = [asyncio.create_task(spool.put(f"k{i}", b"v")) for i in range(20)]
    await asyncio.sleep(0)
    await spool.close()
    await asyncio.gather(*pending)
    with pytest.raises(RuntimeError, match="closed"):
        await spool.put("late", b"v")
    with pytest.raises(RuntimeError, match="closed"):
        await spool.get("k1")
    reopened = RocksDBSpool("data", str(tmp_path))
    assert len(await collect(reopened)) == 20
    await reopened.close()


def test_a_path_that_cannot_be_opened_is_a_config_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=str(blocker)):
        RocksDBSpool("data", str(blocker))


async def test_a_path_already_open_is_a_config_error_naming_it(spool: RocksDBSpool) -> None:
    with pytest.raises(ConfigError, match="cannot open RocksDB spool 'again' at path"):
        RocksDBSpool("again", spool.path)


async def test_factory_accepts_kumomta_options_and_rocks_params(tmp_path: Path) -> None:
    spool = make_rocksdb_spool(
        name="data",
        path=str(tmp_path / "nested" / "dir"),
        flush=True,
        rocks_params={
            "increase_parallelism": 2,
            "compression_type": "Zstd",
            "paranoid_checks": True,
            "log_file_time_to_roll": "1 day",
            "obsolete_files_period": 3600,
            "log_level": "Warn",
        },
        min_free_space="10%",
        min_free_inodes="10%",
    )
    await spool.put("k", b"v")
    assert await spool.get("k") == b"v"
    await spool.close()


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"no_such_knob": 1}, "unknown key 'no_such_knob'"),
        ({"increase_parallelism": "4"}, "rocks_params.increase_parallelism"),
        ({"paranoid_checks": 1}, "rocks_params.paranoid_checks"),
        ({"compression_type": "Brotli"}, "expected one of None, Snappy"),
        ({"obsolete_files_period": "soon"}, "rocks_params.obsolete_files_period"),
    ],
)
def test_bad_rocks_params_are_config_errors_naming_the_key(
    tmp_path: Path, params: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        make_rocksdb_spool(name="data", path=str(tmp_path), rocks_params=params)


async def test_writes_over_the_batch_byte_bound_are_split_into_several_syncs(
    spool: RocksDBSpool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kumocore.spool.commit import committer as committer_module

    # Ten 1,000-byte records against a 2,500-byte bound: a cycle takes at most three.
    monkeypatch.setattr(committer_module, "MAX_BATCH_BYTES", 2500)
    await asyncio.gather(*(spool.put(f"k{i}", b"v" * 1000) for i in range(10)))
    assert spool.records == 10
    assert spool.syncs >= 4
    assert [await spool.get(f"k{i}") for i in (0, 9)] == [b"v" * 1000] * 2
