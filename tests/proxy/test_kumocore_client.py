"""kumocore's own SOCKS5 egress client (kumocore.delivery.proxy) through kumocore's proxy:
the client's BIND of its source address, RFC 1929 and CONNECT, as a node sends mail."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kumocore.delivery.proxy import ProxyError, Route, open_stream
from tests.proxy.support import echo_server, proxy_listener, proxy_port, running, write_policy

AUTH = "kumo.on('proxy_server_auth_rfc1929', function(u, p, meta) return p == 'pw' end)\n"


async def test_egress_client_sends_from_its_source_address_through_the_proxy(
    tmp_path: Path,
) -> None:
    policy = write_policy(tmp_path, proxy_listener("require_auth = true"), AUTH)
    async with echo_server() as echo, running(policy) as d:
        route = Route("socks5", ("127.0.0.1", proxy_port(d)), "127.0.10.20", "mta", b"pw",
                      bind=True)  # fmt: skip
        reader, writer, described = await open_stream(route, "127.0.0.1", echo.port,
                                                       limit=65536)  # fmt: skip
        try:
            writer.write(b"EHLO mta.test\r\n")
            assert await asyncio.wait_for(reader.readline(), 10) == b"EHLO mta.test\r\n"
        finally:
            writer.close()
        assert echo.peers[0][0] == "127.0.10.20"
        assert described["address"] == f"127.0.10.20:{echo.peers[0][1]}"
        assert described["protocol"] == "socks5"


async def test_egress_client_sees_the_refused_password(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, proxy_listener("require_auth = true"), AUTH)
    async with echo_server() as echo, running(policy) as d:
        route = Route("socks5", ("127.0.0.1", proxy_port(d)), "127.0.10.21", "mta", b"bad",
                      bind=True)  # fmt: skip
        with pytest.raises(ProxyError, match="refused the user name or password"):
            await open_stream(route, "127.0.0.1", echo.port, limit=65536)
        assert echo.peers == []
