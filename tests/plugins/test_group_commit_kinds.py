"""What every group-commit spool kind (RocksDB, LMDB) owes the spool contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kumocore.spool import OrderedDeletes, OrderedPuts, Spool
from kumocore.spool.commit import GroupCommitSpool


@pytest.fixture(params=["RocksDB", "LMDB"])
async def spool(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GroupCommitSpool]:
    if request.param == "LMDB":
        from kumocore_lmdb_spool import LmdbSpool

        opened: GroupCommitSpool = LmdbSpool("data", str(tmp_path / "data"))
    else:
        from kumocore_rocksdb_spool import RocksDBSpool

        opened = RocksDBSpool("data", str(tmp_path / "data"))
    yield opened
    await opened.close()


async def test_the_kind_satisfies_the_spool_protocol_and_the_ordered_writes(
    spool: GroupCommitSpool,
) -> None:
    assert isinstance(spool, Spool)
    assert isinstance(spool, OrderedPuts)
    assert isinstance(spool, OrderedDeletes)


async def test_put_get_delete_round_trip(spool: GroupCommitSpool) -> None:
    await spool.put("a" * 32, b"\x00binary\xff")
    assert await spool.get("a" * 32) == b"\x00binary\xff"
    assert await spool.get("b" * 32) is None
    await spool.delete("a" * 32)
    assert await spool.get("a" * 32) is None
    await spool.delete("a" * 32)  # absent: no error


async def test_put_overwrites_an_existing_value(spool: GroupCommitSpool) -> None:
    await spool.put("k", b"one")
    await spool.put("k", b"two")
    assert await spool.get("k") == b"two"


async def test_scan_yields_the_records_of_every_chunk_in_key_order(
    spool: GroupCommitSpool,
) -> None:
    await spool.put("b", b"2")
    await spool.put("a", b"1")
    assert [item async for item in spool.scan()] == [("a", b"1"), ("b", b"2")]
