"""A hostile client against the proxy: what it must not be able to hold or break."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import socket
import time
from pathlib import Path

import pytest

from bench.common.ports import free_port
from kumocore.proxy.listener import RESERVED_FDS
from tests.proxy.support import (
    CLIENT_ADDRESS,
    OPEN_CLIENTS,
    Stream,
    closed,
    connect,
    greeting,
    no_auth,
    proxy_listener,
    proxy_port,
    request,
    running,
    write_policy,
)
from tests.proxy.test_auth import login

SLOW_AUTH = """
kumo.on('proxy_server_auth_rfc1929', function(username, password, conn_meta)
  if username == 'slow' then kumo.sleep(30) end
  return password == 'pw'
end)
"""


async def test_auth_handler_slower_than_timeout_refuses_within_the_timeout(
    tmp_path: Path,
) -> None:
    options = "require_auth = true, timeout = '1 seconds'"
    policy = write_policy(tmp_path, proxy_listener(options), SLOW_AUTH)
    async with running(policy) as d:
        port = proxy_port(d)
        started = time.monotonic()
        _, status = await asyncio.wait_for(login(port, "slow", "pw"), 5)
        assert status == b"\x01\x01"
        assert time.monotonic() - started < 3
        metrics = d.listeners[0].metrics
        for _ in range(100):
            if metrics.active == 0:
                break
            await asyncio.sleep(0.02)
        assert metrics.active == 0  # the slot is free again
        # The policy still answers the next client.
        _, status = await asyncio.wait_for(login(port, "fast", "pw"), 5)
        assert status == b"\x01\x00"


def _held_by_streams() -> int:
    """Bytes the process's asyncio streams hold: read but not consumed, or written but
    not sent (the test's own ends are raw sockets, so these are the proxy's)."""
    held = 0
    gc.collect()  # the streams of earlier tests do not count
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.StreamReader):
            transport = obj._transport  # only open connections count
            if transport is not None and not transport.is_closing():
                held += len(obj._buffer)
        elif isinstance(obj, asyncio.StreamWriter) and not obj.transport.is_closing():
            held += obj.transport.get_write_buffer_size()
    return held


async def _flood(sock: socket.socket, seconds: float) -> int:
    """Send as fast as the proxy takes for ``seconds``: the bytes it took."""
    loop, sent, chunk = asyncio.get_running_loop(), 0, b"x" * 65536
    deadline = loop.time() + seconds
    with contextlib.suppress(TimeoutError):
        while loop.time() < deadline:
            await asyncio.wait_for(loop.sock_sendall(sock, chunk), deadline - loop.time())
            sent += len(chunk)
    return sent


async def test_client_flooding_a_destination_that_never_reads_is_held_in_small_buffers(
    tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    with socket.socket() as silent, socket.socket() as client:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.setblocking(False)
        async with running(write_policy(tmp_path, proxy_listener())) as d:
            client.bind((CLIENT_ADDRESS, 0))
            client.setblocking(False)
            await loop.sock_connect(client, ("127.0.0.1", proxy_port(d)))
            await loop.sock_sendall(client, greeting(0) + request(1, *silent.getsockname()))
            accepted, _ = await asyncio.wait_for(loop.sock_accept(silent), 5)
            with accepted:  # accepted and never read
                reply = b""
                while len(reply) < 12:
                    reply += await asyncio.wait_for(loop.sock_recv(client, 64), 5)
                assert reply[:4] == b"\x05\x00\x05\x00"
                sent = await _flood(client, 2.0)
                held = _held_by_streams()
                # Most of what was sent sits in the kernel's socket buffers; the proxy
                # itself holds a few 16 KiB chunks (over 300 KiB with asyncio's defaults).
                assert sent > 4 * 65536
                assert held <= 8 * 16 * 1024, held


async def _http_client(port: int) -> Stream:
    stream = await asyncio.open_connection("127.0.0.1", port, local_addr=(CLIENT_ADDRESS, 0))
    OPEN_CLIENTS.append(stream[1])
    return stream


async def test_http_listener_caps_the_connections_one_untrusted_peer_holds(
    tmp_path: Path,
) -> None:
    port = free_port("127.0.0.1")
    http = f"proxy.start_http_listener {{ listen = '127.0.0.1:{port}' }}"
    async with running(write_policy(tmp_path, proxy_listener() + "\n" + http)):
        idle = [await _http_client(port) for _ in range(64)]  # sending nothing
        reader, writer = await _http_client(port)
        answer = await asyncio.wait_for(reader.read(), 5)  # answered and closed at once
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"max_connections_per_peer 64" in answer
        idle[0][1].close()
        await asyncio.sleep(0.2)
        reader, writer = await _http_client(port)  # a place is free again
        writer.write(b"GET /proxy/status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 401 ")


async def test_max_connections_is_lowered_to_fit_the_open_file_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A soft limit of 70 descriptors: 64 kept for the process, 3 clients of 2 each.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    monkeypatch.setattr(resource, "getrlimit", lambda which: (RESERVED_FDS + 6, hard))
    async with running(write_policy(tmp_path, proxy_listener())) as d:
        port = proxy_port(d)
        for _ in range(3):
            await no_auth(await connect(port))
        reader, writer = await connect(port)
        writer.write(greeting(0))
        assert await closed(reader, within=2)  # closed at once, before the greeting
        assert d.listeners[0].metrics.counts["proxy_connections_refused"] == 1
        assert d.listeners[0].max_connections == 3


def test_serve_raises_the_soft_open_file_limit_to_the_hard_one_as_kumoproxy_does() -> None:
    import resource

    from kumocore.proxy.daemon import raise_open_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        assert raise_open_file_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
