"""Child process for the kill -9 test: bodies in an LMDB spool, their markers in a RocksDB
spool, through put_before; a third of them removed as the store removes them. Prints each
key once its pair is acknowledged."""

from __future__ import annotations

import asyncio
import sys

from kumocore_lmdb_spool import LmdbSpool
from kumocore_rocksdb_spool import RocksDBSpool


async def main(path: str, writers: int) -> None:
    data = LmdbSpool("data", path + "/data")
    meta = RocksDBSpool("meta", path + "/meta")
    queue = iter(range(1_000_000))

    async def writer() -> None:
        for n in queue:
            key = f"{n:08d}"
            body = key.encode() * (256 + n % 4096)  # 2 KB to 66 KB: overflow pages of all sizes
            await data.put_before(key, body, meta, key, b"envelope " + key.encode())
            sys.stdout.write(key + "\n")  # acknowledged: our "250 OK"
            sys.stdout.flush()
            if n % 3 == 0:  # "delivered": marker deleted, then body, as the store does
                sys.stdout.write(f"gone {key}\n")
                sys.stdout.flush()
                await data.delete_after(key, meta, key)

    await asyncio.gather(*(writer() for _ in range(writers)))
    sys.stdout.write("DONE\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
