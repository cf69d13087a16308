from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_lmdb_spool import LmdbSpool
from kumocore_rocksdb_spool import RocksDBSpool

from tests.support.kill9 import lines_until_killed

CHILD = Path(__file__).with_name("writer_child.py")


def _acknowledged_until_killed(path: Path, kill_at: int, layout: str) -> list[str]:
    lines = lines_until_killed([str(CHILD), str(path), "50", layout], kill_at)
    assert "DONE" not in lines
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("round_", [1, 2])
@pytest.mark.parametrize("layout", ["separate", "shared"])
async def test_after_kill_9_every_acknowledged_body_is_there_and_no_marker_lost_its_body(
    tmp_path: Path, round_: int, layout: str,
) -> None:
    """Round 2 kills a child that reopened the spools of round 1's killed child, so it
    writes into an environment with stale reader slots and reused pages. ``shared``: the
    markers in an LMDB spool at the bodies' path, written in their transactions."""
    spool = tmp_path / "spool"
    spool.mkdir()
    lines: list[str] = []
    for _ in range(round_):
        lines = _acknowledged_until_killed(spool, 3000, layout)
    gone = {line.split()[1] for line in lines if line.startswith("gone ")}
    acknowledged = [line for line in lines if not line.startswith("gone ")]
    data = LmdbSpool("data", str(spool / "data"))
    meta = (LmdbSpool("meta", str(spool / "data")) if layout == "shared"
            else RocksDBSpool("meta", str(spool / "meta")))
    try:
        markers = {key: value async for key, value in meta.scan()}
        bodies = {key: len(value) async for key, value in data.scan()}
    finally:
        await data.close()
        await meta.close()
    assert [key for key in acknowledged if key not in gone and key not in markers] == []
    assert [key for key in markers if key not in bodies] == []  # never a marker alone
    assert all(bodies[key] == 8 * (256 + int(key) % 4096) for key in markers)
