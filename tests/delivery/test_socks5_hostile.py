"""The SOCKS5 client (BIND of ``socks5_proxy_source_address``, then CONNECT) against a
hostile proxy on 127.0.0.1: each misbehaviour ends within ``connect_timeout`` as a
transient failure with a text that says what the proxy did, counts as the source's
``ProxyUnhealthy`` only where KumoMTA counts it (a refused BIND; no TCP connection to
the proxy), and leaves no socket open on either side."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kumocore.config import EgressPathConfig, EgressSource
from kumocore.delivery.client import open_connection
from kumocore.delivery.client_failure import ConnectFailure
from kumocore.queue.source_health import PROXY_UNHEALTHY

SOURCE = "127.0.0.1"
OK_V4 = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00"  # success, bound 127.0.0.1:0
CONNECT_TIMEOUT = 1.0
HANDSHAKE_TIMEOUT = "timeout after 1s in the handshake with socks5 proxy"

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request(reader: asyncio.StreamReader) -> int:
    """Read one IPv4 request (BIND or CONNECT); its command."""
    head = await reader.readexactly(4)
    await reader.readexactly(6)
    return head[1]


async def _greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(3)  # 05 01 00: no authentication
    writer.write(b"\x05\x00")


async def _then_silent(reader: asyncio.StreamReader) -> None:
    await reader.read()  # until the client leaves


def _bind_reply(reply: bytes, *, then_silent: bool = True) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer)
        await _request(reader)
        writer.write(reply)
        if then_silent:
            await _then_silent(reader)

    return script


async def _immediate_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    return None


async def _drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _greet(reader, writer)
    await _request(reader)
    for byte in OK_V4:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1.0)


async def _bound_then_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _greet(reader, writer)
    assert await _request(reader) == 2  # BIND
    writer.write(OK_V4)
    assert await _request(reader) == 1  # CONNECT: never answered
    await _then_silent(reader)


async def _long_name(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # A bound "address" of 255 bytes: a domain name with a line break in it.
    name = (b"evil\r\n550 5.0.0 injected" + b"x" * 255)[:255]
    reply = b"\x05\x00\x00\x03" + bytes([len(name)]) + name + b"\x00\x19"
    await _greet(reader, writer)
    await _request(reader)
    writer.write(reply)
    await _request(reader)
    writer.write(reply)
    await _then_silent(reader)


class _Proxy:
    """A SOCKS5 server running ``script`` per connection; counts the connections still
    open on its side."""

    def __init__(self, script: Script) -> None:
        self.script, self.open, self.port = script, 0, 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await self.script(reader, writer)
        finally:
            writer.close()
            self.open -= 1

    async def __aenter__(self) -> _Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _attempt(script: Script) -> tuple[ConnectFailure, float, _Proxy]:
    async with _Proxy(script) as proxy:
        source = EgressSource.from_options({
            "name": "s", "socks5_proxy_server": f"127.0.0.1:{proxy.port}",
            "socks5_proxy_source_address": SOURCE})
        started = time.monotonic()
        with pytest.raises(ConnectFailure) as failure:
            await open_connection(
                mx_host="mx.test", address="127.0.0.1", port=9, source_address=None,
                ehlo_domain="client.test", egress_source=source,
                path=EgressPathConfig.from_options({"connect_timeout": f"{CONNECT_TIMEOUT}s"}))
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 2
        while proxy.open and time.monotonic() < deadline:  # the proxy sees the close
            await asyncio.sleep(0.01)
    return failure.value, elapsed, proxy


@pytest.fixture
async def fd_check() -> AsyncIterator[None]:
    before = _fds()
    yield
    await asyncio.sleep(0.05)
    assert _fds() <= before


CASES = {
    "truncated": (_bind_reply(b"\x05\x00\x00\x01\x7f\x00", then_silent=False),
                  "SOCKS5 proxy 127.0.0.1:", "closed the connection during its BIND reply",
                  None),
    "truncated_then_silent": (_bind_reply(b"\x05\x00\x00\x01\x7f\x00"), HANDSHAKE_TIMEOUT,
                              "(to 127.0.0.1:9)", None),
    "unknown_address_type": (_bind_reply(b"\x05\x00\x00\x07"),
                             "SOCKS5 proxy", "unknown address type 7 in its BIND reply", None),
    "one_byte_per_second": (_drip, HANDSHAKE_TIMEOUT, "(to 127.0.0.1:9)", None),
    # The bytes beyond the BIND reply are read as the CONNECT reply.
    "larger_than_asked": (_bind_reply(OK_V4 + b"\x00" * 30),
                          "SOCKS5 proxy", "unknown address type 0 in its CONNECT reply", None),
    "immediate_close": (_immediate_close, "SOCKS5 proxy 127.0.0.1:", "during its greeting",
                        None),
    "bound_then_connect_silent": (_bound_then_silent, HANDSHAKE_TIMEOUT, "(to 127.0.0.1:9)",
                                  None),
    "refused_bind": (_bind_reply(b"\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00"),
                     "could not bind 127.0.0.1", "general SOCKS server failure",
                     PROXY_UNHEALTHY),
    "domain_of_255_bytes": (_long_name, "connected from evil??550 5.0.0 injectedxx",
                            "..., not from socks5_proxy_source_address", PROXY_UNHEALTHY),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_hostile_socks5_proxy_fails_the_connection_in_time_with_a_clear_text(
    case: str, fd_check: None
) -> None:
    script, where, what, source_failure = CASES[case]
    failure, elapsed, proxy = await _attempt(script)
    text = failure.response.to_single_line()
    assert failure.response.code == 451, text
    assert where in text and what in text, text
    assert "\r" not in failure.response.content and "\n" not in failure.response.content
    assert failure.source_failure == source_failure
    assert elapsed < CONNECT_TIMEOUT + 0.5
    assert proxy.open == 0
