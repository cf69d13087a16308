"""Bytes both ways between a client and its destination, as KumoProxy's passthru mode.

Each direction reads at most :data:`CHUNK` bytes and waits for the other side to take
them (``drain``) before reading more, so a fast sender and a slow receiver never grow a
buffer past the transport's high-water mark plus one chunk. When one side ends its
sending (EOF), the other side's sending half is shut (a TCP half-close, as
``copy_bidirectional`` does) and the other direction goes on until it ends too. A reset
on either side ends both. The caller closes both sockets whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

#: Bytes read from one side before they are written to the other.
CHUNK = 64 * 1024


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: Callable[[int], None]
) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
        count(len(data))
    # EOF: pass it on. A TLS transport cannot half-close; the peer then sees the end
    # when both directions are done and the socket is closed.
    if writer.can_write_eof():
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


async def relay(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    remote: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    to_remote: Callable[[int], None],
    to_client: Callable[[int], None],
) -> None:
    """Until both directions have ended (or one has failed): ``to_remote`` and
    ``to_client`` are told each chunk's size as it is passed on."""
    upstream = asyncio.ensure_future(_pump(client[0], remote[1], to_remote))
    downstream = asyncio.ensure_future(_pump(remote[0], client[1], to_client))
    pending: set[asyncio.Future[None]] = {upstream, downstream}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a reset ends the whole session
    finally:
        for task in (upstream, downstream):
            task.cancel()
        await asyncio.gather(upstream, downstream, return_exceptions=True)
