from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kumocore_rocksdb_spool import RocksDBSpool

CHILD = Path(__file__).with_name("writer_child.py")
ROOT = Path(__file__).resolve().parents[3]


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
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path / "spool"), "1000000", str(writers), wal],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    acknowledged: list[str] = []
    try:
        for line in proc.stdout:  # kill it mid-stream, while puts are in flight
            acknowledged.append(line.strip())
            if len(acknowledged) == 1000:
                os.kill(proc.pid, signal.SIGKILL)
                break
        # Whatever the child managed to print before dying was acknowledged too.
        acknowledged.extend(line.strip() for line in proc.stdout)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert "DONE" not in acknowledged
    spool = RocksDBSpool("data", str(tmp_path / "spool"))
    try:
        stored = {key async for key, _ in spool.scan()}
    finally:
        await spool.close()
    missing = [key for key in acknowledged if key not in stored]
    assert missing == []
    assert [key for key in stored if key.startswith("warm")] == []
    assert len(stored) >= len(acknowledged)
