"""What the proxy tests share: a policy writer, the proxy running in this process, a
raw SOCKS5 client (bound to 127.0.0.5, an untrusted peer) and an echo server that
records where each connection came from."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from kumocore.proxy.daemon import ProxyDaemon

CLIENT_ADDRESS = "127.0.0.5"
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def write_policy(tmp_path: Path, listener: str, extra: str = "", name: str = "proxy.lua") -> Path:
    """A KumoProxy policy whose proxy_init runs ``listener`` (Lua statements)."""
    policy = tmp_path / name
    policy.write_text(
        "local kumo = require 'kumo'\nlocal proxy = require 'proxy'\n"
        f"kumo.on('proxy_init', function()\n{listener}\nend)\n{extra}"
    )
    return policy


def proxy_listener(options: str = "") -> str:
    return f"proxy.start_proxy_listener {{ listen = '127.0.0.1:0', {options} }}"


@contextlib.asynccontextmanager
async def running(policy: Path) -> AsyncIterator[ProxyDaemon]:
    daemon = await ProxyDaemon.load(str(policy))
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.close()


def proxy_port(daemon: ProxyDaemon, index: int = 0) -> int:
    address = daemon.listeners[index].address
    assert address is not None
    return address[1]


#: Clients of the running test, closed after it (tests/proxy/conftest.py).
OPEN_CLIENTS: list[asyncio.StreamWriter] = []


async def connect(port: int) -> Stream:
    stream = await asyncio.open_connection("127.0.0.1", port, local_addr=(CLIENT_ADDRESS, 0))
    OPEN_CLIENTS.append(stream[1])
    return stream


def greeting(*methods: int) -> bytes:
    return bytes((5, len(methods), *methods))


def request(command: int, host: str, port: int) -> bytes:
    ip = ipaddress.ip_address(host)
    atyp = 1 if ip.version == 4 else 4
    return bytes((5, command, 0, atyp)) + ip.packed + struct.pack("!H", port)


def domain_request(command: int, name: str, port: int) -> bytes:
    data = name.encode()
    return bytes((5, command, 0, 3, len(data))) + data + struct.pack("!H", port)


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, str, int]:
    """A request's reply: (status, address, port)."""
    version, status, _rsv, atyp = await asyncio.wait_for(reader.readexactly(4), 10)
    assert version == 5
    size = 4 if atyp == 1 else 16
    packed = await reader.readexactly(size)
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    return status, str(ipaddress.ip_address(packed)), port


async def no_auth(stream: Stream) -> None:
    """Greeting offering only "no authentication", and its answer checked."""
    stream[1].write(greeting(0))
    assert await asyncio.wait_for(stream[0].readexactly(2), 10) == b"\x05\x00"


async def bind_and_connect(stream: Stream, source: str, port: int) -> tuple[str, int]:
    """BIND ``source``:0 then CONNECT to 127.0.0.1:``port``: the connected-from address."""
    reader, writer = stream
    writer.write(request(2, source, 0))
    status, bound, _ = await read_reply(reader)
    assert (status, bound) == (0, source)
    writer.write(request(1, "127.0.0.1", port))
    status, host, local_port = await read_reply(reader)
    assert status == 0
    return host, local_port


@dataclass
class EchoServer:
    """Echoes each line; ``peers`` are the addresses connections came from."""

    peers: list[tuple[str, int]] = field(default_factory=list)
    port: int = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[:2])
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()  # answers a half-close with its own
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[EchoServer]:
    echo = EchoServer()
    server = await asyncio.start_server(echo._handle, "127.0.0.1", 0)
    echo.port = server.sockets[0].getsockname()[1]
    try:
        yield echo
    finally:
        server.close()
        await server.wait_closed()


async def closed(reader: asyncio.StreamReader, within: float = 10) -> bool:
    """Whether the other side closes (EOF or reset) within ``within`` seconds."""
    try:
        return await asyncio.wait_for(reader.read(1024), within) == b""
    except ConnectionError:
        return True
