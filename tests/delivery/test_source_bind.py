"""A direct connection binds its egress source address itself
(:mod:`kumocore.delivery.source_bind`), so a failed bind is told from a failed connect;
:func:`kumocore.delivery.source_failure.counted_as` then names the KumoMTA counter each
connection failure moves (``bind_failures``, ``proxy_connection_failures``, or none)."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from bench.common.ports import free_port
from kumocore.delivery.proxy import Progress, ProxyUnreachable, ProxyWrongSource, Route
from kumocore.delivery.source_bind import SourceBindFailed, connect_from
from kumocore.delivery.source_failure import counted_as
from kumocore.queue.egress_counts import BIND_FAILURES, PROXY_CONNECTION_FAILURES
from tests.queue.test_source_health_table import unplumbed_address

DIRECT = Route(None, None, "192.0.2.1")
SOCKS5 = Route("socks5", ("127.0.0.1", 1080), "192.0.2.1")


async def test_the_connection_leaves_from_the_bound_source_address_without_nagle() -> None:
    peers: list[str] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await connect_from("127.0.0.54", "127.0.0.1", port, limit=1024)
        assert writer.get_extra_info("sockname")[0] == "127.0.0.54"
        # Pipelined commands are not held back by Nagle, whichever event loop runs.
        sock = writer.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert await reader.read() == b""  # the server closed it
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert peers == ["127.0.0.54"]


async def test_an_address_on_no_interface_fails_to_bind_with_the_binds_errno() -> None:
    source = unplumbed_address()
    with pytest.raises(SourceBindFailed) as raised:
        await connect_from(source, "127.0.0.1", 9, limit=1024)
    assert raised.value.errno == errno.EADDRNOTAVAIL
    assert str(raised.value).endswith(
        f"could not bind source address {source}: cannot assign requested address")


async def test_a_refused_connect_is_not_a_bind_failure() -> None:
    with pytest.raises(ConnectionRefusedError):
        await connect_from("127.0.0.1", "127.0.0.1", free_port("127.0.0.1"), limit=1024)


@pytest.mark.parametrize(
    ("route", "exc", "proxy_connected", "counter"),
    [
        (DIRECT, SourceBindFailed(errno.EADDRNOTAVAIL, "x"), False, BIND_FAILURES),
        (DIRECT, SourceBindFailed(errno.EINVAL, "x"), False, BIND_FAILURES),
        (DIRECT, ConnectionRefusedError(), False, None),
        (DIRECT, TimeoutError(), False, None),
        (SOCKS5, ProxyUnreachable("refused"), False, PROXY_CONNECTION_FAILURES),
        (SOCKS5, TimeoutError(), False, PROXY_CONNECTION_FAILURES),
        (SOCKS5, TimeoutError(), True, None),  # the proxy took it; the handshake was slow
        (SOCKS5, ProxyWrongSource("elsewhere"), True, None),
    ],
)
def test_each_failure_moves_the_counter_kumomta_counts_it_on(
    route: Route, exc: BaseException, proxy_connected: bool, counter: str | None
) -> None:
    assert counted_as(exc, route, Progress(proxy_connected=proxy_connected)) == counter
