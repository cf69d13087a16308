"""Opening a delivery connection to a unix-domain socket (an ``mx_list`` path).

As in KumoMTA the egress source plays no part: no local address is bound and no proxy
is used, and the log records' ``source_address`` is the client socket's own address,
which for an unnamed socket KumoMTA writes as ``<unbound unix domain>``. The caller
bounds the connect with the path's ``connect_timeout``, as for an IP address.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: How KumoMTA shows the local address of a client socket that was never bound.
UNBOUND = "<unbound unix domain>"


async def open_unix_stream(
    path: str, *, limit: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
    """Connect to the socket at ``path``: the streams and the ``source_address`` of
    log records (KumoMTA's ``{address}``, without ``server``/``protocol``)."""
    reader, writer = await asyncio.open_unix_connection(path, limit=limit)
    local = writer.get_extra_info("sockname")
    return reader, writer, {"address": local if isinstance(local, str) and local else UNBOUND}
