"""Measure synced puts per second with 1 and with N concurrent writers.

``python -m bench.micro.rocksdb_spool [--seconds 3] [--size 2048] [--writers 1,100]``

Each writer loops ``await spool.put(new id, value)``; every put is durable when it
returns. With one writer each put pays a whole WAL sync; with many, group commit shares
one sync among every put that arrived while the previous sync was on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from kumocore_rocksdb_spool.spool import RocksDBSpool

from kumocore.mail.ids import new_message_id


async def measure(path: str, writers: int, seconds: float, size: int) -> tuple[float, float]:
    """``(puts per second, mean records per sync)`` for ``writers`` concurrent writers."""
    spool = RocksDBSpool("bench", path)
    value = os.urandom(size)
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await spool.put(new_message_id(), value)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - start
    per_sync = spool.records / max(spool.syncs, 1)
    await spool.close()
    return done / elapsed, per_sync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=2048, help="value size in bytes")
    parser.add_argument("--writers", default="1,100", help="comma-separated writer counts")
    parser.add_argument("--dir", default=None, help="where to create the databases")
    args = parser.parse_args()
    for writers in (int(w) for w in args.writers.split(",")):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            rate, per_sync = asyncio.run(measure(tmp, writers, args.seconds, args.size))
        print(f"writers={writers:4d} puts/s={rate:10.0f} records/sync={per_sync:6.1f}")


if __name__ == "__main__":
    main()
