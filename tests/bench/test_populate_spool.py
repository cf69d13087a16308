"""The scheduled section's spool loader writes what kumocore's spools then read."""

from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_lmdb_spool import LmdbSpool
from kumocore_rocksdb_spool import RocksDBSpool

from bench.perf.recovery import populate_spool
from kumocore.spool.commit import GroupCommitSpool


async def _count(spool: GroupCommitSpool) -> int:
    try:
        return len([key async for key in spool.keys()])  # noqa: SIM118 (a spool)
    finally:
        await spool.close()


@pytest.mark.parametrize("meta_kind", ["LMDB", "RocksDB"])
async def test_populated_lmdb_bodies_and_their_envelopes_open_in_the_spools_the_policy_defines(
    tmp_path: Path, meta_kind: str,
) -> None:
    var = tmp_path / "var"
    result = populate_spool(var, 120, b"Subject: x\r\n\r\nbody\r\n", batch=50,
                            data_kind="LMDB", meta_kind=meta_kind)
    assert result.count == 120
    data = str(var / "spool" / "data")
    meta: GroupCommitSpool = (LmdbSpool("meta", data) if meta_kind == "LMDB"
                              else RocksDBSpool("meta", str(var / "spool" / "meta")))
    assert await _count(meta) == 120
    assert await _count(LmdbSpool("data", data)) == 120
    assert (var / "spool" / "meta").exists() == (meta_kind == "RocksDB")
