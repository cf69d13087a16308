"""Child process for the kill -9 tests: put records (or body-and-marker pairs) and print
each key once its put returned."""

from __future__ import annotations

import asyncio
import sys

from kumocore_rocksdb_spool import RocksDBSpool

from tests.support.pairs_child import write_pairs


async def pairs(path: str, count: int, writers: int, lists: bool) -> None:
    """Bodies and their markers, some of them delivered (tests.support.pairs_child)."""
    data = RocksDBSpool("data", path + "/data")
    meta = RocksDBSpool("meta", path + "/meta")
    value = b"x" * 2048
    await write_pairs(data, meta, count, writers, lambda _: value, lists)


async def main(path: str, count: int, writers: int, wal: str) -> None:
    if wal in ("pairs", "pair-lists"):
        await pairs(path, count, writers, wal == "pair-lists")
        return
    spool = RocksDBSpool("data", path)
    value = b"x" * 2048
    # "rotated": flush a few memtables first, so the puts below go to a later WAL file,
    # a reused one. "recycled": more records first, so that file still holds old (deleted)
    # records beyond the point where the child is killed.
    warm = {"new": 0, "rotated": 100, "recycled": 3000}[wal]
    for round_ in range(3 if warm else 0):
        keys = [f"warm{round_}-{n:04d}" for n in range(warm)]
        await asyncio.gather(*(spool.put(key, value) for key in keys))
        await asyncio.gather(*(spool.delete(key) for key in keys))
        spool._db.flush(True)
    queue = iter(range(count))

    async def writer() -> None:
        for n in queue:
            key = f"{n:08d}"
            await spool.put(key, value)
            # Only now is the put acknowledged: this line is our "250 OK".
            sys.stdout.write(key + "\n")
            sys.stdout.flush()

    await asyncio.gather(*(writer() for _ in range(writers)))
    sys.stdout.write("DONE\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)  # stay up until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
