"""KumoProxy's SOCKS5 session: BIND a source address then CONNECT, the relay both ways,
and what is refused (domain names, UDP ASSOCIATE, garbage, a stalled client)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.proxy.support import (
    bind_and_connect,
    closed,
    connect,
    domain_request,
    echo_server,
    greeting,
    no_auth,
    proxy_listener,
    proxy_port,
    read_reply,
    request,
    running,
    write_policy,
)


async def test_bind_then_connect_sends_from_the_bound_address_and_relays(tmp_path: Path) -> None:
    async with echo_server() as echo, running(write_policy(tmp_path, proxy_listener())) as d:
        stream = await connect(proxy_port(d))
        await no_auth(stream)
        host, port = await bind_and_connect(stream, "127.0.10.1", echo.port)
        reader, writer = stream
        writer.write(b"hello through the proxy\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"hello through the proxy\n"
        # The echo server saw the connection from the address the client bound.
        assert echo.peers == [("127.0.10.1", port)]
        assert host == "127.0.10.1"
        writer.close()


async def test_connect_without_bind_replies_with_the_address_connected_from(
    tmp_path: Path,
) -> None:
    async with echo_server() as echo, running(write_policy(tmp_path, proxy_listener())) as d:
        reader, writer = await connect(proxy_port(d))
        await no_auth((reader, writer))
        writer.write(request(1, "127.0.0.1", echo.port))
        status, host, port = await read_reply(reader)
        assert status == 0
        assert echo.peers == [(host, port)]
        writer.close()


async def test_half_close_passes_eof_on_and_the_other_direction_goes_on(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the relay's buffers
    async with echo_server() as echo, running(write_policy(tmp_path, proxy_listener())) as d:
        reader, writer = await connect(proxy_port(d))
        await no_auth((reader, writer))
        await bind_and_connect((reader, writer), "127.0.10.2", echo.port)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sending = asyncio.create_task(send())
        echoed = await asyncio.wait_for(reader.read(-1), 20)  # until the echo's EOF
        await sending
        assert echoed == payload
        writer.close()
        metrics = d.listeners[0].metrics
        for _ in range(100):
            if metrics.counts["proxy_connections_completed"]:
                break
            await asyncio.sleep(0.05)
        assert metrics.counts["proxy_bytes_client_to_dest"] == len(payload)
        assert metrics.counts["proxy_bytes_dest_to_client"] == len(payload)
        assert metrics.active == 0


async def test_domain_name_connect_is_refused_with_general_failure(tmp_path: Path) -> None:
    async with echo_server() as echo, running(write_policy(tmp_path, proxy_listener())) as d:
        reader, _writer = await connect(proxy_port(d))
        await no_auth((reader, _writer))
        _writer.write(domain_request(1, "localhost", echo.port))
        status, host, port = await read_reply(reader)
        assert (status, host, port) == (1, "0.0.0.0", 0)
        assert await closed(reader)
        assert echo.peers == []


async def test_udp_associate_is_not_supported(tmp_path: Path) -> None:
    async with running(write_policy(tmp_path, proxy_listener())) as d:
        reader, writer = await connect(proxy_port(d))
        await no_auth((reader, writer))
        writer.write(request(3, "127.0.0.1", 53))
        assert (await read_reply(reader))[0] == 7
        assert await closed(reader)


async def test_connect_refused_reports_connection_refused(tmp_path: Path) -> None:
    async with echo_server() as echo, running(write_policy(tmp_path, proxy_listener())) as d:
        port = echo.port
    async with running(write_policy(tmp_path, proxy_listener())) as d:
        reader, writer = await connect(proxy_port(d))
        await no_auth((reader, writer))
        writer.write(request(1, "127.0.0.1", port))  # the echo server is gone
        assert (await read_reply(reader))[0] == 5
        assert d.listeners[0].metrics.destinations == {f"127.0.0.1:{port}": 1}


async def test_second_bind_is_a_server_failure(tmp_path: Path) -> None:
    async with running(write_policy(tmp_path, proxy_listener())) as d:
        reader, writer = await connect(proxy_port(d))
        await no_auth((reader, writer))
        writer.write(request(2, "127.0.10.3", 0))
        assert (await read_reply(reader))[0] == 0
        writer.write(request(2, "127.0.10.3", 0))
        assert (await read_reply(reader))[0] == 1
        assert await closed(reader)


async def test_garbage_greeting_is_closed_without_reply(tmp_path: Path) -> None:
    async with running(write_policy(tmp_path, proxy_listener())) as d:
        reader, writer = await connect(proxy_port(d))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await asyncio.wait_for(reader.read(1024), 10) == b""
        await asyncio.sleep(0.05)
        assert d.listeners[0].metrics.counts["proxy_connections_failed"] == 1


async def test_unknown_address_type_is_answered_then_closed(tmp_path: Path) -> None:
    async with running(write_policy(tmp_path, proxy_listener())) as d:
        reader, writer = await connect(proxy_port(d))
        await no_auth((reader, writer))
        writer.write(bytes((5, 1, 0, 9)) + b"\x00" * 600)
        assert await asyncio.wait_for(reader.readexactly(2), 10) == b"\x05\x08"


async def test_greeting_without_a_supported_method_gets_0xff(tmp_path: Path) -> None:
    async with running(write_policy(tmp_path, proxy_listener())) as d:
        reader, writer = await connect(proxy_port(d))
        writer.write(greeting(*range(3, 200)))
        assert await asyncio.wait_for(reader.readexactly(2), 10) == b"\x05\xff"
        assert await closed(reader)


async def test_stalled_client_is_closed_after_timeout_while_another_is_served(
    tmp_path: Path,
) -> None:
    policy = write_policy(tmp_path, proxy_listener("timeout = '1 second'"))
    async with echo_server() as echo, running(policy) as d:
        port = proxy_port(d)
        stalled_reader, stalled_writer = await connect(port)
        stalled_writer.write(b"\x05\x02")  # announces two methods, sends none
        started = time.monotonic()
        # Meanwhile another client is served from start to finish.
        other = await connect(port)
        await no_auth(other)
        await bind_and_connect(other, "127.0.10.4", echo.port)
        other[1].write(b"ping\n")
        assert await asyncio.wait_for(other[0].readline(), 5) == b"ping\n"
        assert time.monotonic() - started < 1.0
        assert await closed(stalled_reader, within=5)
        assert 0.9 <= time.monotonic() - started < 4
        other[1].close()
        stalled_writer.close()


async def test_stall_between_requests_is_bounded_too(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, proxy_listener("timeout = '500 ms'"))
    async with running(policy) as d:
        reader, writer = await connect(proxy_port(d))
        await no_auth((reader, writer))
        writer.write(request(2, "127.0.10.5", 0))
        assert (await read_reply(reader))[0] == 0
        writer.write(b"\x05\x01")  # half a request, then nothing
        assert await closed(reader, within=3)


async def test_fast_client_is_held_back_by_a_destination_that_does_not_read(
    tmp_path: Path,
) -> None:
    """The relay's buffers are bounded: what the destination does not take stays in the
    client's own send buffer instead of piling up in the proxy."""
    accepted: list[asyncio.StreamWriter] = []

    async def never_reads(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    sink = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    sink_port = sink.sockets[0].getsockname()[1]
    total = 256 * 1024 * 1024
    try:
        async with running(write_policy(tmp_path, proxy_listener())) as d:
            reader, writer = await connect(proxy_port(d))
            await no_auth((reader, writer))
            await bind_and_connect((reader, writer), "127.0.10.12", sink_port)
            chunk = b"x" * (1024 * 1024)

            async def push() -> None:
                for _ in range(total // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()

            pushing = asyncio.create_task(push())
            await asyncio.sleep(2)
            assert not pushing.done()  # held back: the proxy stopped reading
            relayed = d.listeners[0].metrics.counts["proxy_bytes_client_to_dest"]
            # What was passed on is what the kernel buffers of the destination's
            # connection hold (a few MiB on loopback), far from what was offered.
            assert relayed < 32 * 1024 * 1024
            pushing.cancel()
            writer.transport.abort()
    finally:
        for w in accepted:
            w.close()
        sink.close()
        await sink.wait_closed()
