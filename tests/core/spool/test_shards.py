"""Changing the worker count moves spooled mail from shards nobody owns into owned ones:
nothing lost, nothing twice, shared bodies and quarantined records included, for the
LocalDisk and RocksDB spool kinds and an LMDB data spool; a crash mid-move loses nothing
either."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kumocore.config.spool import SpoolDefinition
from kumocore.mail.body import SharedBody
from kumocore.mail.message import Message
from kumocore.spool.base import Spool
from kumocore.spool.localdisk import LocalDiskSpool
from kumocore.spool.shards import CRASH_AFTER_ENV, migrate, orphan_shards, owned_path
from kumocore.spool.store import MessageStore
from kumocore.spool.store_recovery import QUARANTINE_PREFIX

BODY = b"Subject: shared\r\n\r\n" + b"b" * 2048 + b"\r\n"


def _rocksdb(name: str, path: str, **_: Any) -> Spool:
    plugin = pytest.importorskip("kumocore_rocksdb_spool")
    spool: Spool = plugin.RocksDBSpool(name, path)
    return spool


def _lmdb(name: str, path: str, **_: Any) -> Spool:
    plugin = pytest.importorskip("kumocore_lmdb_spool")
    spool: Spool = plugin.LmdbSpool(name, path)
    return spool


KINDS: dict[str, Any] = {"LocalDisk": LocalDiskSpool, "RocksDB": _rocksdb, "LMDB": _lmdb}


def _kinds(kind: str) -> dict[str, str]:
    """The kind of each spool: ``"LMDB"`` is an LMDB data spool beside a RocksDB meta,
    ``"LMDB-shared"`` both spools in LMDB at one path (one environment)."""
    if kind == "LMDB-shared":
        return {"data": "LMDB", "meta": "LMDB"}
    return {"data": kind, "meta": "RocksDB" if kind == "LMDB" else kind}


def _path(root: Path, kind: str, name: str) -> Path:
    return root / ("lmdb" if kind == "LMDB-shared" else name)


def definitions(root: Path, kind: str) -> dict[str, SpoolDefinition]:
    return {name: SpoolDefinition.from_options(
        {"name": name, "path": str(_path(root, kind, name)), "kind": spool_kind})
        for name, spool_kind in _kinds(kind).items()}


def store_at(root: Path, kind: str, index: int, count: int) -> MessageStore:
    def path(name: str) -> str:
        return owned_path(str(_path(root, kind, name)), index, count)

    kinds = _kinds(kind)
    return MessageStore(KINDS[kinds["data"]]("data", path("data")),
                        KINDS[kinds["meta"]]("meta", path("meta")))


async def fill(root: Path, kind: str, count: int, shard: int = 0) -> set[str]:
    """Ten single messages and a three-recipient transaction in one shard of ``count``."""
    store = store_at(root, kind, shard, count)
    ids = set()
    shared = SharedBody(BODY)
    messages = [Message("a@s.test", f"r{n}@example.com", f"Subject: {n}\r\n\r\nhi\r\n".encode())
                for n in range(10)]
    messages += [Message("a@s.test", f"t{n}@example.com", f"Received: {n}\r\n".encode(),
                         shared=shared) for n in range(3)]  # fmt: skip
    for message in messages:
        await store.save(message)
        ids.add(message.id)
    await store.close()
    return ids


async def contents(root: Path, kind: str, count: int) -> tuple[Counter[str], int]:
    """Message ids found in the owned shards (with their multiplicity, bodies loaded) and
    quarantined records."""
    found: Counter[str] = Counter()
    quarantined = 0
    for index in range(count):
        store = store_at(root, kind, index, count)
        async for message in store.recover(load_data=True):
            assert message.data.endswith(b"\r\n")
            found[message.id] += 1
        quarantined += sum([1 async for key in store.meta.keys()  # noqa: SIM118
                            if key.startswith(QUARANTINE_PREFIX)])  # fmt: skip
        await store.close()
    return found, quarantined


@pytest.fixture(params=["LocalDisk", "RocksDB", "LMDB", "LMDB-shared"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_one_to_two_to_three_to_two_to_one_keeps_every_message_exactly_once(
    tmp_path: Path, kind: str
) -> None:
    spools = definitions(tmp_path, kind)
    ids = await fill(tmp_path, kind, 1)
    for previous, count in ((1, 2), (2, 3), (3, 2), (2, 1)):
        moved = await migrate(spools, KINDS, count)
        found, _ = await contents(tmp_path, kind, count)
        assert found == Counter(ids), (previous, count)
        assert orphan_shards(spools["meta"].path, count) in ([], [None]), (previous, count)
        # Growing a sharded node moves nothing (new shards start empty), and the third
        # shard got nothing to give back.
        assert moved == (len(ids) if 1 in (previous, count) else 0), (previous, count)
    assert not list(Path(spools["meta"].path).glob("worker-*"))  # emptied shards removed


async def test_mail_of_the_unsharded_spool_is_spread_over_the_workers(
    tmp_path: Path, kind: str
) -> None:
    ids = await fill(tmp_path, kind, 1)
    await migrate(definitions(tmp_path, kind), KINDS, 2)
    per_shard = []
    for index in range(2):
        store = store_at(tmp_path, kind, index, 2)
        per_shard.append(len([m async for m in store.recover()]))
        await store.close()
    assert sum(per_shard) == len(ids) and all(per_shard), per_shard
    root, _ = await contents(tmp_path, kind, 1)
    assert not root  # the unsharded spool is empty (its files stay, empty)


async def test_a_quarantined_record_moves_with_the_mail(tmp_path: Path, kind: str) -> None:
    store = store_at(tmp_path, kind, 3, 4)  # left by a run with four workers
    await store.meta.put(QUARANTINE_PREFIX + "0" * 32, b"not json")
    await store.data.put("0" * 32, b"the body kept for an operator")
    await store.close()
    await migrate(definitions(tmp_path, kind), KINDS, 2)
    _, quarantined = await contents(tmp_path, kind, 2)
    assert quarantined == 1
    assert not (_path(tmp_path, kind, "meta") / "worker-3").exists()


async def test_a_single_process_spool_ignores_shard_directories_inside_its_path(
    tmp_path: Path,
) -> None:
    await fill(tmp_path, "LocalDisk", 2, shard=1)
    store = store_at(tmp_path, "LocalDisk", 0, 1)  # <path> itself, worker-1 inside it
    assert [m async for m in store.recover()] == []
    await store.close()


CHILD = """
import asyncio, sys
from pathlib import Path
from tests.core.spool.test_shards import KINDS, definitions
from kumocore.spool.shards import migrate
asyncio.run(migrate(definitions(Path(sys.argv[1]), sys.argv[2]), KINDS, int(sys.argv[3])))
"""


def _migrate_in_child(root: Path, kind: str, count: int, kill_after: int = 0) -> int:
    env = {**os.environ, CRASH_AFTER_ENV: str(kill_after)}
    result = subprocess.run([sys.executable, "-c", CHILD, str(root), kind, str(count)],
                            env=env, cwd=Path(__file__).parents[3], timeout=120)  # fmt: skip
    return result.returncode


async def test_kill_9_in_the_middle_of_a_move_loses_nothing_and_a_rerun_duplicates_nothing(
    tmp_path: Path, kind: str
) -> None:
    from kumocore.spool.shards import BATCH

    store = store_at(tmp_path, kind, 0, 1)
    ids = set()
    for n in range(BATCH * 2 + 10):
        message = Message("a@s.test", f"r{n}@example.com", b"Subject: x\r\n\r\nhi\r\n")
        await store.save(message)
        ids.add(message.id)
    await store.close()

    # Killed once the second batch is copied: the first batch has moved, the second is in
    # both places for now.
    assert _migrate_in_child(tmp_path, kind, 2, kill_after=2 * BATCH) == -9
    in_root, _ = await contents(tmp_path, kind, 1)
    in_shards, _ = await contents(tmp_path, kind, 2)
    assert set(in_root) | set(in_shards) == ids  # every message somewhere
    # The first batch's deletes were not synced: in the OS's hands with RocksDB and
    # LocalDisk, so they survive the kill; LMDB holds them for its next transaction, so
    # the kill forgets them and the rerun moves that batch again, to the same keys.
    forgotten = BATCH if kind == "LMDB-shared" else 0
    assert len(in_root) == len(ids) - BATCH + forgotten
    assert len(in_shards) == 2 * BATCH

    assert _migrate_in_child(tmp_path, kind, 2) == 0
    found, _ = await contents(tmp_path, kind, 2)
    assert found == Counter(ids)  # the same count again: exactly once


class _FullDisk(LocalDiskSpool):
    """A LocalDisk spool whose disk is full: every write fails as the kernel says so."""

    async def put(self, key: str, value: bytes) -> None:
        raise OSError(28, "No space left on device")


async def test_a_full_disk_stops_the_move_in_one_line_and_loses_nothing(tmp_path: Path) -> None:
    from kumocore.errors import ConfigError

    ids = await fill(tmp_path, "LocalDisk", 1)

    def kind(name: str, path: str, **options: Any) -> Spool:
        return (_FullDisk if "worker-" in path else LocalDiskSpool)(name, path, **options)

    with pytest.raises(ConfigError, match=r"moving the spool to 2 worker\(s\) failed after 0 "
                       r"messages: .*No space left on device.*the next start resumes"):
        await migrate(definitions(tmp_path, "LocalDisk"), {"LocalDisk": kind}, 2)
    found, _ = await contents(tmp_path, "LocalDisk", 1)
    assert found == Counter(ids)
