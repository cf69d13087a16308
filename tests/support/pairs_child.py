"""What the kill -9 children of the spool tests write: bodies and their markers, some of
them removed again, each acknowledged on standard output."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from kumocore.spool.commit import GroupCommitSpool


async def write_pairs(data: GroupCommitSpool, meta: GroupCommitSpool, count: int,
                      writers: int, body_of: Callable[[int], bytes],
                      lists: bool = False) -> None:  # fmt: skip
    """Bodies through ``put_before`` their markers, a line ``<key>`` once a pair is
    acknowledged; every third message then removed as the core's store removes one
    (marker, then body: ``delete_after``) after a line ``gone <key>``; ``DONE`` at the
    end, after which the child stays up until it is killed. ``lists``: removed 20 at a
    time, as the store removes an admin bounce's messages (``delete_many_after``)."""
    queue = iter(range(count))
    going: list[str] = []

    async def remove(key: str) -> None:
        sys.stdout.write(f"gone {key}\n")
        sys.stdout.flush()
        if not lists:
            await data.delete_after(key, meta, key)
            return
        going.append(key)
        if len(going) >= 20:
            keys = going[:]
            going.clear()
            await data.delete_many_after(keys, meta, keys)

    async def writer() -> None:
        for n in queue:
            key = f"{n:08d}"
            await data.put_before(key, body_of(n), meta, key, b"envelope " + key.encode())
            sys.stdout.write(key + "\n")  # acknowledged: our "250 OK"
            sys.stdout.flush()
            if n % 3 == 0:  # "delivered": to be removed, in the store's order
                await remove(key)

    await asyncio.gather(*(writer() for _ in range(writers)))
    sys.stdout.write("DONE\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)  # stay up until killed
