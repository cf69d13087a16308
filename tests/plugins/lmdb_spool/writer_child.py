"""Child process for the kill -9 test: bodies in an LMDB spool, their markers in a RocksDB
spool (``separate``) or in an LMDB spool at the same path (``shared``), a third of them
removed again (tests.support.pairs_child)."""

from __future__ import annotations

import asyncio
import sys

from kumocore_lmdb_spool import LmdbSpool
from kumocore_rocksdb_spool import RocksDBSpool

from tests.support.pairs_child import write_pairs


def body_of(n: int) -> bytes:
    """2 KB to 66 KB: LMDB overflow pages of every size."""
    return f"{n:08d}".encode() * (256 + n % 4096)


async def main(path: str, writers: int, layout: str) -> None:
    data = LmdbSpool("data", path + "/data")
    meta = (LmdbSpool("meta", path + "/data") if layout == "shared"
            else RocksDBSpool("meta", path + "/meta"))
    await write_pairs(data, meta, 1_000_000, writers, body_of)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
