from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kumocore_lmdb_spool import LmdbSpool
from kumocore_rocksdb_spool import RocksDBSpool

CHILD = Path(__file__).with_name("writer_child.py")
ROOT = Path(__file__).resolve().parents[3]


def _acknowledged_until_killed(path: Path, kill_at: int) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), "50"], stdout=subprocess.PIPE, text=True,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:  # killed mid-stream, while transactions are in flight
            lines.append(line.strip())
            if len(lines) == kill_at:
                os.kill(proc.pid, signal.SIGKILL)
                break
        lines.extend(line.strip() for line in proc.stdout)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert "DONE" not in lines
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("round_", [1, 2])
async def test_after_kill_9_every_acknowledged_body_is_there_and_no_marker_lost_its_body(
    tmp_path: Path, round_: int,
) -> None:
    """Round 2 kills a child that reopened the spools of round 1's killed child, so it
    writes into an environment with stale reader slots and reused pages."""
    spool = tmp_path / "spool"
    spool.mkdir()
    lines: list[str] = []
    for _ in range(round_):
        lines = _acknowledged_until_killed(spool, 3000)
    gone = {line.split()[1] for line in lines if line.startswith("gone ")}
    acknowledged = [line for line in lines if not line.startswith("gone ")]
    data = LmdbSpool("data", str(spool / "data"))
    meta = RocksDBSpool("meta", str(spool / "meta"))
    try:
        markers = {key: value async for key, value in meta.scan()}
        bodies = {key: len(value) async for key, value in data.scan()}
    finally:
        await data.close()
        await meta.close()
    assert [key for key in acknowledged if key not in gone and key not in markers] == []
    assert [key for key in markers if key not in bodies] == []  # never a marker alone
    assert all(bodies[key] == 8 * (256 + int(key) % 4096) for key in markers)
