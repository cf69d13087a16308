"""A direct connection from the egress source's ``source_address``, with the bind done
here rather than by ``asyncio.open_connection(local_addr=...)``: a failed bind is then
a :class:`SourceBindFailed` (KumoMTA's ``bind_failures``; with ``EADDRNOTAVAIL`` its
``Unplumbed`` source failure), told apart from a failed connect without reading the
text of asyncio's error. The socket's family is the destination's, as KumoMTA makes it:
a source address of the other family fails to bind.
"""

from __future__ import annotations

import asyncio
import socket

__all__ = ["SourceBindFailed", "connect_from"]


class SourceBindFailed(OSError):
    """The source address could not be bound (``errno`` is the bind's)."""


async def connect_from(
    source_ip: str, address: str, port: int, *, limit: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP stream to ``address:port`` (an IP address) leaving from ``source_ip``."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            sock.bind((source_ip, 0))
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise SourceBindFailed(
                exc.errno, f"could not bind source address {source_ip}: {reason}") from exc
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
        # As open_connection(host, port) would: the standard loop sets no TCP_NODELAY on a
        # socket it is handed, and pipelined commands must not wait for Nagle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return await asyncio.open_connection(sock=sock, limit=limit)
    except BaseException:
        sock.close()
        raise
