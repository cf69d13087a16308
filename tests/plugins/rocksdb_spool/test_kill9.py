from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_rocksdb_spool import RocksDBSpool

from tests.support.kill9 import lines_until_killed

CHILD = Path(__file__).with_name("writer_child.py")


def _run_child_until_killed(path: Path, writers: int, mode: str, kill_at: int) -> list[str]:
    """Start the writer child, SIGKILL it once ``kill_at`` lines came, return every line."""
    lines = lines_until_killed([str(CHILD), str(path), "1000000", str(writers), mode], kill_at)
    assert "DONE" not in lines
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("removal", ["pairs", "pair-lists"])
async def test_every_acknowledged_body_and_marker_survive_kill_9_and_no_marker_loses_its_body(
    tmp_path: Path, removal: str,
) -> None:
    """Bodies and markers through put_before (one commit cycle each pair), a third of
    the messages removed as the store removes them (marker, then body; "pair-lists":
    20 at a time, as an admin bounce's are): after kill -9 every acknowledged message
    not being removed is there with its marker, and no marker is left without its
    body."""
    (tmp_path / "spool").mkdir()
    lines = _run_child_until_killed(tmp_path / "spool", 50, removal, 3000)
    gone = {line.split()[1] for line in lines if line.startswith("gone ")}  # or going
    acknowledged = [line for line in lines if not line.startswith("gone ")]
    data = RocksDBSpool("data", str(tmp_path / "spool" / "data"))
    meta = RocksDBSpool("meta", str(tmp_path / "spool" / "meta"))
    try:
        markers = {key: value async for key, value in meta.scan()}
        bodies = {key async for key in data.keys()}  # noqa: SIM118 (a spool)
    finally:
        await data.close()
        await meta.close()
    assert [key for key in acknowledged if key not in gone and key not in markers] == []
    assert [key for key in markers if key not in bodies] == []  # never a marker alone
    assert gone - markers.keys(), "no removal reached the spool"
    assert all(markers[key] == b"envelope " + key.encode() for key in markers)


@pytest.mark.slow
@pytest.mark.parametrize(("writers", "wal"),
                         [(1, "new"), (50, "new"), (50, "rotated"), (50, "recycled")])
async def test_every_acknowledged_put_survives_kill_9_and_nothing_deleted_comes_back(
    tmp_path: Path, writers: int, wal: str
) -> None:
    # "rotated": memtables were flushed first, so the puts go to a later WAL file, one
    # that RocksDB reuses, and recovery starts from the flushed tables plus that file.
    # "recycled": that reused file still holds older records (put and deleted before the
    # flush) past the last new one; recovery must stop where the new records end.
    acknowledged = _run_child_until_killed(tmp_path / "spool", writers, wal, 1000)
    spool = RocksDBSpool("data", str(tmp_path / "spool"))
    try:
        stored = {key async for key, _ in spool.scan()}
    finally:
        await spool.close()
    missing = [key for key in acknowledged if key not in stored]
    assert missing == []
    assert [key for key in stored if key.startswith("warm")] == []
    assert len(stored) >= len(acknowledged)
