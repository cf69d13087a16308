"""kumocore's max_connections bound, TLS on the SOCKS5 listener, and tcp_keepalive."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

from kumocore.proxy.options import ProxyListenerConfig
from kumocore.proxy.session import set_keepalive
from tests.proxy.support import (
    CLIENT_ADDRESS,
    OPEN_CLIENTS,
    bind_and_connect,
    closed,
    connect,
    echo_server,
    no_auth,
    proxy_listener,
    proxy_port,
    running,
    write_policy,
)


async def test_client_past_max_connections_is_closed_at_once(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, proxy_listener("max_connections = 2"))
    async with running(policy) as d:
        port = proxy_port(d)
        first, second = await connect(port), await connect(port)
        await no_auth(first)
        await no_auth(second)
        third = await connect(port)
        third[1].write(b"\x05\x01\x00")
        assert await closed(third[0], within=2)  # no method reply: closed before reading
        metrics = d.listeners[0].metrics
        assert metrics.counts["proxy_connections_refused"] == 1
        assert metrics.active == 2
        first[1].close()
        for _ in range(100):
            if metrics.active < 2:
                break
            await asyncio.sleep(0.02)
        fourth = await connect(port)
        await no_auth(fourth)  # a place is free again
        assert metrics.counts["proxy_connections_accepted"] == 3


async def test_max_connections_defaults_to_32768() -> None:
    config = ProxyListenerConfig.from_options({"listen": "127.0.0.1:0"})
    assert config.max_connections == 32768
    assert config.timeout == 60.0
    assert config.require_auth is False


async def test_tls_listener_with_self_signed_certificate_serves_socks5(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, proxy_listener("use_tls = true, hostname = 'proxy.test'"))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with echo_server() as echo, running(policy) as d:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", proxy_port(d), ssl=context, server_hostname="proxy.test",
            local_addr=(CLIENT_ADDRESS, 0))  # fmt: skip
        OPEN_CLIENTS.append(writer)
        cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert cert
        await no_auth((reader, writer))
        await bind_and_connect((reader, writer), "127.0.10.7", echo.port)
        writer.write(b"over tls\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"over tls\n"
        assert echo.peers[0][0] == "127.0.10.7"


async def test_plain_client_on_tls_listener_counts_a_handshake_failure(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, proxy_listener("use_tls = true, timeout = '2 seconds'"))
    async with running(policy) as d:
        reader, writer = await connect(proxy_port(d))
        writer.write(b"\x05\x01\x00")
        assert await closed(reader, within=5)
        metrics = d.listeners[0].metrics
        for _ in range(100):
            if metrics.counts["proxy_tls_handshake_failures"]:
                break
            await asyncio.sleep(0.02)
        assert metrics.counts["proxy_tls_handshake_failures"] == 1


def test_tcp_keepalive_sets_the_socket_options() -> None:
    keepalive = {"time": "2 minutes", "interval": "15 seconds", "retries": 4}
    options = {"listen": "127.0.0.1:0", "tcp_keepalive": keepalive}
    config = ProxyListenerConfig.from_options(options)
    with socket.socket() as sock:
        set_keepalive(sock, config.tcp_keepalive)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 120
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 15
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4


def test_tcp_keepalive_disabled_leaves_the_socket_alone() -> None:
    options = {"listen": "127.0.0.1:0", "tcp_keepalive": {"enabled": False}}
    config = ProxyListenerConfig.from_options(options)
    with socket.socket() as sock:
        set_keepalive(sock, config.tcp_keepalive)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


def _timer(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The kernel's timer kind (2: keepalive) of the TCP socket local→remote, from
    /proc/net/tcp (IPv4 addresses in host byte order, little-endian here)."""

    def hexaddr(address: tuple[str, int]) -> str:
        packed = socket.inet_aton(address[0])[::-1].hex().upper()
        return f"{packed}:{address[1]:04X}"

    wanted = (hexaddr(local), hexaddr(remote))
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            return int(fields[5].split(":")[0], 16)
    return None


async def _idle_timer(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The timer once the socket is idle (1, retransmission, shows while the last reply
    is not yet acknowledged)."""
    for _ in range(100):
        timer = _timer(local, remote)
        if timer != 1:
            return timer
        await asyncio.sleep(0.02)
    return 1


async def test_keepalive_is_on_both_the_client_and_the_destination_socket(
    tmp_path: Path,
) -> None:
    async with echo_server() as echo, running(write_policy(tmp_path, proxy_listener())) as d:
        stream = await connect(proxy_port(d))
        await no_auth(stream)
        source = await bind_and_connect(stream, "127.0.10.8", echo.port)
        client = stream[1].get_extra_info("sockname")[:2]
        assert await _idle_timer(("127.0.0.1", proxy_port(d)), client) == 2
        assert await _idle_timer(source, ("127.0.0.1", echo.port)) == 2


async def test_keepalive_disabled_leaves_no_keepalive_timer(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, proxy_listener("tcp_keepalive = { enabled = false }"))
    async with echo_server() as echo, running(policy) as d:
        stream = await connect(proxy_port(d))
        await no_auth(stream)
        source = await bind_and_connect(stream, "127.0.10.9", echo.port)
        assert await _idle_timer(source, ("127.0.0.1", echo.port)) == 0


async def test_tls_certificate_and_key_from_vault_are_served(tmp_path: Path) -> None:
    from kumocore.reception.tls import self_signed_pem
    from tests.support.vault_server import vault_server

    cert_pem, key_pem = self_signed_pem("vault-proxy.test")
    async with vault_server() as vault:
        vault.put("tls/proxy.cert", key=cert_pem.decode())
        vault.put("tls/proxy.key", private_key=key_pem.decode())

        def lua(fields: dict[str, str]) -> str:
            return "{ " + ", ".join(f"{k} = '{v}'" for k, v in fields.items()) + " }"

        cert = lua(vault.source("tls/proxy.cert"))
        key = lua(vault.source("tls/proxy.key", vault_key="private_key"))
        options = f"use_tls = true, tls_certificate = {cert}, tls_private_key = {key}"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        async with running(write_policy(tmp_path, proxy_listener(options))) as d:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", proxy_port(d), ssl=context, local_addr=(CLIENT_ADDRESS, 0)
            )
            OPEN_CLIENTS.append(writer)
            served = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            assert served == ssl.PEM_cert_to_DER_cert(cert_pem.decode())
            await no_auth((reader, writer))
