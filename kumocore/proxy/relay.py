"""Bytes both ways between a client and its destination, as KumoProxy's passthru mode.

Each direction reads at most :data:`CHUNK` bytes and waits for the other side to take
them (``drain``) before reading more. asyncio's defaults would still let one stalled
direction hold over 300 KiB (a 256 KiB ``recv``, a reader paused only past 128 KiB, a
64 KiB write high-water mark): :func:`bound_stream` shrinks all three to :data:`CHUNK`,
so a fast sender and a slow receiver leave a few chunks in the process (about 70 KiB
measured; the rest waits in the kernel's socket buffers). When one side ends its
sending (EOF), the other side's sending half is shut (a TCP half-close, as
``copy_bidirectional`` does) and the other direction goes on until it ends too. A reset
on either side ends both. The caller closes both sockets whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

#: Bytes read from one side before they are written to the other; also the size of each
#: ``recv`` on a plain socket, the streams' ``limit`` (a reader pauses past twice it)
#: and the write high-water mark.
CHUNK = 16 * 1024


def bound_stream(writer: asyncio.StreamWriter) -> None:
    """Shrink what one relayed socket buffers in the process (see the module's doc)."""
    transport = writer.transport
    transport.set_write_buffer_limits(high=CHUNK)
    # A plain socket's transport reads `max_size` bytes per recv whatever the reader's
    # limit; a TLS transport has no such attribute and decrypts record by record.
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = CHUNK  # type: ignore[attr-defined]


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
    bound_stream(client[1])
    bound_stream(remote[1])
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
