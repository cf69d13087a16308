"""Bodies coming and going: the RocksDB and LMDB spool kinds side by side.

``python -m bench.micro.spool_kinds [--puts 20000] [--writers 20] [--kept 0.05]``

Each writer puts bodies of mixed sizes (2 KB to 200 KB, most of them small, as mail is)
and deletes each one a few puts later, as delivery does; a share (``--kept``) stays until
the end, as deferred mail does, so freed space is scattered between live records. For
each kind it prints the synced puts per second, the CPU per put (process time, every
thread), the rate of the last quarter against the first (a spool whose free space
fragments slows down) and the disk it uses against the bytes still stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kumocore.mail.ids import new_message_id
from kumocore.spool.commit import GroupCommitSpool

SIZES = (2_048, 2_048, 2_048, 8_192, 8_192, 20_480, 51_200, 102_400, 204_800)
#: How many of its own puts a writer makes before it deletes a body it put.
LIFETIME = 4


def _opener(kind: str) -> Callable[[str], GroupCommitSpool]:
    if kind == "LMDB":
        from kumocore_lmdb_spool import LmdbSpool

        return lambda path: LmdbSpool("data", path)
    from kumocore_rocksdb_spool import RocksDBSpool

    return lambda path: RocksDBSpool("data", path)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _disk(path: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


async def measure(kind: str, path: Path, puts: int, writers: int, kept: float) -> str:
    spool = _opener(kind)(str(path))
    bodies = {size: os.urandom(size) for size in set(SIZES)}
    rng = random.Random(8)
    plan = [(rng.choice(SIZES), rng.random() < kept) for _ in range(puts)]
    stamps: list[float] = []
    live = 0
    cursor = iter(plan)

    async def writer() -> None:
        nonlocal live
        mine: list[str] = []
        for size, keep in cursor:
            key = new_message_id()
            await spool.put(key, bodies[size])
            stamps.append(time.perf_counter())
            if keep:
                live += size
            else:
                mine.append(key)
            if len(mine) > LIFETIME:
                await spool.delete(mine.pop(0))
        for key in mine:
            await spool.delete(key)

    cpu, start = _cpu(), time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    await spool.close()
    quarter = len(stamps) // 4
    first = quarter / (stamps[quarter] - start)
    last = quarter / (stamps[-1] - stamps[-quarter - 1])
    return (f"{kind:8s} puts/s={puts / elapsed:7.0f} CPU/put={cpu / puts * 1e6:6.0f} us "
            f"last/first quarter={last / first:4.2f} disk={_disk(path) / 2**20:6.1f} MiB "
            f"live={live / 2**20:6.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--kept", type=float, default=0.05, help="share never deleted")
    parser.add_argument("--kinds", default="RocksDB,LMDB")
    parser.add_argument("--dir", default=None, help="where to create the spools")
    args = parser.parse_args()
    for kind in args.kinds.split(","):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            print(asyncio.run(measure(kind, Path(tmp) / "data", args.puts, args.writers,
                                      args.kept)))


if __name__ == "__main__":
    main()
