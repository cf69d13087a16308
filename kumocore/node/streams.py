"""asyncio stream details shared by both SMTP sides (the listener and the client).

Kept apart from either so that neither imports the other: the listener's replies and the
client's commands leave through the same kind of :class:`asyncio.StreamWriter`.
"""

from __future__ import annotations

import asyncio


def drain_needed(writer: asyncio.StreamWriter) -> bool:
    """Whether ``await writer.drain()`` could do anything but return at once.

    A command or reply normally leaves in the ``send`` that ``write`` makes, and
    ``drain`` then only runs its checks: two coroutine frames for nothing, several times
    per message. It is still awaited whenever there is something to wait for or to
    report: data left in the buffer (flow control may pause us), a closing transport, or
    an error from the peer.
    """
    transport = writer.transport
    if transport.get_write_buffer_size() or transport.is_closing():
        return True
    reader = writer._reader  # type: ignore[attr-defined]  # what drain() itself checks
    return reader is not None and reader.exception() is not None
