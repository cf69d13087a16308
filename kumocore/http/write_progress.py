"""Whether an HTTP client still reads the response it asked for (``response_write_timeout``).

A response the client does not read fills the transport's buffer, which then pauses
writing. Without a bound, a client that asked for a large response (``/metrics``, an admin
listing, the status page) and never read held the connection, the handler and the unsent
response for ever.

The deadline is on progress, not on ``resume_writing``: a response written in one piece
pauses writing once and stays paused until nearly all of it is sent, so a client reading
it slowly but steadily would be cut off part way. While writing is paused,
:class:`WriteProgress` looks at what is unsent :data:`WRITE_CHECKS` times per timeout and
calls its ``stalled`` callback once nothing moved for a whole timeout. What is unsent must
include the socket's kernel send queue (:func:`kernel_unsent`): it grows to megabytes and
drains for seconds before the transport's own buffer shrinks at all.

Such a client is dropped with a TCP reset (:func:`reset`). A transport's ``abort()``
closes the socket, and a socket closed with unsent data is not gone: the kernel keeps it
(FIN-WAIT-1, with megabytes of the response) and probes the client's zero window for
minutes, where a reset frees it at once. With ``abort()`` alone, the 20 clients of the
reliability suite's ``sec_http`` attack all stayed connected after the process had let
them go; one looked at with ``ss`` still had 2.8 MB queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import sys
import termios
from collections.abc import Callable

__all__ = ["WRITE_CHECKS", "WriteProgress", "kernel_unsent", "reset"]

#: Looks at a paused connection's unsent bytes per timeout: a client that stopped reading
#: is given up between one and 1 + 1/WRITE_CHECKS timeouts after it last took some.
WRITE_CHECKS = 4


def kernel_unsent(transport: asyncio.BaseTransport) -> int:
    """Bytes in the socket's kernel send queue the client has not acknowledged (Linux
    ``SIOCOUTQ``, the same request as ``TIOCOUTQ``); 0 where that cannot be asked."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        answer = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, bytes(4))
    except (OSError, ValueError):  # not Linux (ENOTTY), or the socket was closed
        return 0
    return int.from_bytes(answer, sys.byteorder, signed=True)


def reset(transport: asyncio.Transport) -> None:
    """Abort the connection with a TCP reset, so the kernel drops what is unsent too."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):  # already closed
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        transport.abort()


class WriteProgress:
    """Watches one connection while its writing is paused."""

    def __init__(
        self, timeout: float, unsent: Callable[[], int], stalled: Callable[[], None]
    ) -> None:
        self.timeout = timeout
        self._unsent = unsent
        self._stalled = stalled
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0  # unsent bytes at the last look
        self._quiet = 0  # looks since the client last took some

    @property
    def watching(self) -> bool:
        """Writing is paused and the client has not been given up yet."""
        return self._timer is not None

    def paused(self) -> None:
        if self._timer is None:
            self._last, self._quiet = self._unsent(), 0
            self._arm()

    def resumed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(
            self.timeout / WRITE_CHECKS, self._look)

    def _look(self) -> None:
        self._timer = None
        unsent = self._unsent()
        if unsent < self._last:  # the client took some since the last look
            self._last, self._quiet = unsent, 0
            self._arm()
            return
        self._quiet += 1
        if self._quiet < WRITE_CHECKS:
            self._arm()
            return
        self._stalled()
