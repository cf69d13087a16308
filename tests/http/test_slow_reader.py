"""``response_write_timeout``: a client that asks for a large response and stops reading
it is aborted, while one that reads slowly but steadily gets the whole body (and is not
closed as idle meanwhile), over plain HTTP and TLS.

Before, such a client held its connection, the request's handler and the unsent
response in the server for ever: the handler waited in aiohttp's drain, where neither
``header_timeout`` nor ``keepalive_timeout`` applies. The clients are raw sockets with a
small receive buffer, from an address outside ``trusted_hosts``."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import sys
import termios
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aiohttp import web

from bench.common.smtp_client import insecure_client_context
from kumocore.config import HttpListenerConfig
from kumocore.errors import ConfigError
from kumocore.http.binding import GuardedSite
from kumocore.http.connections import LINGER, ConnectionGuard
from kumocore.http.guard import make_connection_middleware
from kumocore.http.stepwise_body import stream_parts
from tests.http.conftest import StartHttp

UNTRUSTED = "127.0.0.5"
#: ``tcpi_state`` of a connection that is gone (Linux ``TCP_CLOSE``): reset, not closing.
TCP_CLOSE = 7
#: ``response_write_timeout`` of these listeners, and how late its abort may come.
TIMEOUT = 1.0
SLACK = 1.0
#: 4 MiB, each line numbered, so that a lost, doubled or reordered piece shows.
BODY = b"".join(b"%07d\n" % n for n in range(512 * 1024))
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


@dataclass
class Served:
    guard: ConnectionGuard
    address: tuple[str, int] = ("", 0)
    #: Handlers of the large responses that started, and those that returned (or failed).
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def serving(send_buffer: int | None = None, **options: Any) -> AsyncIterator[Served]:
    """A listener bound as every kumocore HTTP listener is (:class:`GuardedSite`, under
    ``kumo.start_http_listener`` and the services' listeners), serving anyone ``BODY`` in
    one piece at ``/large`` (as ``/metrics``), in 64 KiB parts at ``/chunks`` (as the
    admin listings, by :func:`stream_parts`), in one piece written after its handler
    returned at ``/answer`` (a ``web.Response``) and a few bytes at ``/small``.
    ``send_buffer``: the connections' kernel send buffer (else the kernel sizes it, up to
    megabytes), so that most of a response waits in the server's transport instead."""
    config = HttpListenerConfig.from_options({"listen": "127.0.0.1:0", **options})
    site = GuardedSite(config)
    served = Served(site.guard)

    async def large(request: web.Request) -> web.StreamResponse:
        served.started.append(request.path)
        try:  # written here rather than by aiohttp after the handler, to see it end
            if request.path == "/chunks":
                parts = (BODY[at:at + 65536] for at in range(0, len(BODY), 65536))
                return await stream_parts(request, parts, "text/plain")
            response = web.StreamResponse()
            response.content_length = len(BODY)
            await response.prepare(request)
            await response.write(BODY)
            await response.write_eof()
            return response
        finally:
            served.finished.append(request.path)

    async def answer(_: web.Request) -> web.StreamResponse:
        return web.Response(body=BODY, content_type="text/plain")

    async def small(_: web.Request) -> web.StreamResponse:
        return web.Response(text="small")

    app = web.Application(middlewares=[make_connection_middleware(site.guard)])
    app.router.add_get("/large", large)
    app.router.add_get("/chunks", large)
    app.router.add_get("/answer", answer)
    app.router.add_get("/small", small)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           keepalive_timeout=config.keepalive_timeout)  # fmt: skip
    await runner.setup()
    site.attach(runner)
    server = await site.bind()
    if send_buffer is not None:  # accepted connections inherit it
        server.sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    host, port = server.sockets[0].getsockname()[:2]
    served.address = (str(host), int(port))
    try:
        yield served
    finally:
        server.close()
        await runner.cleanup()
        await server.wait_closed()


async def raw_client(address: tuple[str, int], *, receive_buffer: int = 4096,
                     source: str = UNTRUSTED) -> socket.socket:  # fmt: skip
    """A connected non-blocking socket whose receive buffer is set before it connects
    (the window it offers the server follows from it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address)
    return sock


async def tls_client(address: tuple[str, int], *, receive_buffer: int = 4096) -> Stream:
    """As :func:`raw_client`, over TLS; the reader buffers at most twice the socket's."""
    sock = await raw_client(address, receive_buffer=receive_buffer)
    return await asyncio.open_connection(sock=sock, ssl=insecure_client_context(),
                                         server_hostname="localhost", limit=receive_buffer)


def stop_reading(writer: asyncio.StreamWriter) -> None:
    """The client reads no more: what arrives waits in the socket, which fills."""
    cast(asyncio.ReadTransport, writer.transport).pause_reading()


async def until(check: Callable[[], bool], within: float) -> float:
    """Seconds until ``check()`` held; fails when it does not within ``within``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"not within {within}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def body_of(response: bytes) -> bytes:
    """The body of one whole response (with a Content-Length, or chunked)."""
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    if b"transfer-encoding: chunked" not in head.lower():
        assert int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) == len(body)
        return body
    parts: list[bytes] = []
    while True:
        size, _, body = body.partition(b"\r\n")
        if not int(size, 16):
            assert body == b"\r\n", body[:100]
            return b"".join(parts)
        parts.append(body[:int(size, 16)])
        assert body[int(size, 16):int(size, 16) + 2] == b"\r\n"
        body = body[int(size, 16) + 2:]


def complete(response: bytes) -> bool:
    """Whether ``response`` (read so far) ends with the last of ``BODY``."""
    return response.endswith((BODY[-8:], BODY[-8:] + b"\r\n0\r\n\r\n"))


async def fetch(stream: Stream, path: str) -> bytes:
    """The body of ``GET path`` on a keep-alive connection, read at full speed."""
    reader, writer = stream
    writer.write(get(path))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return body_of(head + await asyncio.wait_for(reader.readexactly(length), 10))


async def read_slowly(receive: Callable[[], Awaitable[bytes]], served: Served) -> bytes:
    """A steady reader: waits half the timeout, takes what arrived (at most 512 KiB), and
    again, until the whole response is in. Fails if the server closes first."""
    received = b""
    while not complete(received):
        await asyncio.sleep(TIMEOUT / 2)  # well within the timeout, every time
        chunk = await asyncio.wait_for(receive(), 5)
        assert chunk, f"closed after {len(received)} bytes: {served.guard.stats()}"
        received += chunk
    return received


async def fetch_slowly(served: Served, path: str) -> tuple[bytes, float]:
    """``GET path`` read by :func:`read_slowly` on a new connection; the response as
    received and the seconds it took."""
    loop = asyncio.get_running_loop()
    client = await raw_client(served.address, receive_buffer=256 * 1024)
    try:
        await loop.sock_sendall(client, get(path))
        started = time.monotonic()
        received = await read_slowly(lambda: loop.sock_recv(client, 512 * 1024), served)
        return received, time.monotonic() - started
    finally:
        client.close()


async def received_until_closed(client: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(
                asyncio.get_running_loop().sock_recv(client, 65536), 5):  # fmt: skip
            received += chunk
    return received


@pytest.mark.parametrize("path", ["/large", "/chunks"])
async def test_a_client_that_never_reads_a_large_response_is_aborted_after_the_timeout(
    path: str,
) -> None:
    async with serving(response_write_timeout=f"{TIMEOUT}s") as served:
        client = await raw_client(served.address)
        try:
            await asyncio.get_running_loop().sock_sendall(client, get(path))
            await until(lambda: served.started == [path], 5)
            assert served.guard.stats()["open"] == 1
            seconds = await until(lambda: served.guard.stats()["open"] == 0, TIMEOUT + SLACK)
            assert seconds > TIMEOUT * 0.8, seconds  # not before the timeout
            stats = served.guard.stats()
            assert (stats["closed_slow_readers"], stats["closed_idle"]) == (1, 0)
            # the connection, its handler and the unsent response are gone
            assert served.guard.by_handler == {}
            await until(lambda: served.finished == [path], 1)  # its drain woke
            # reset, without a reply: the kernel keeps none of the unsent response either
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_CLOSE
            assert len(await received_until_closed(client)) < len(BODY)
        finally:
            client.close()


async def test_clients_that_stop_reading_do_not_delay_another_client_and_are_all_aborted(
) -> None:  # fmt: skip
    async with serving(response_write_timeout=f"{TIMEOUT}s") as served:
        loop = asyncio.get_running_loop()
        stalled = [await raw_client(served.address) for _ in range(20)]
        stream = await asyncio.open_connection(*served.address, local_addr=("127.0.0.6", 0))
        try:
            for client in stalled:
                await loop.sock_sendall(client, get("/large"))
            await until(lambda: len(served.started) == 20, 5)
            deadline = time.monotonic() + TIMEOUT + SLACK
            latencies = []
            while served.guard.stats()["closed_slow_readers"] < 20:  # the stall, the aborts
                assert time.monotonic() < deadline, served.guard.stats()
                started = time.monotonic()
                assert await fetch(stream, "/small") == b"small"
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.02)
            assert len(latencies) > 10 and max(latencies) < TIMEOUT / 4, latencies
            await until(lambda: served.guard.stats()["open"] == 1, 1)  # the reading client
            await until(lambda: len(served.finished) == 20, 1)
            # reading at full speed, it gets a large response on the same connection
            assert await fetch(stream, "/large") == BODY
            assert await fetch(stream, "/small") == b"small"
            assert served.guard.stats()["closed_slow_readers"] == 20
        finally:
            for client in stalled:
                client.close()
            stream[1].close()


@pytest.mark.parametrize("send_buffer", [None, 64 * 1024], ids=["kernel-sized", "small"])
async def test_a_client_reading_slowly_but_steadily_gets_the_whole_response(
    send_buffer: int | None,
) -> None:
    """With a small send buffer the server's transport holds most of the response, and
    writing stays paused until nearly all of it was read: seconds, several timeouts."""
    async with serving(send_buffer, response_write_timeout=f"{TIMEOUT}s") as served:
        received, seconds = await fetch_slowly(served, "/large")
        assert body_of(received) == BODY
        # several timeouts in all: the deadline is for each wait, not for the whole body
        assert seconds > 2 * TIMEOUT, seconds
        assert served.guard.stats()["closed_slow_readers"] == 0


async def test_a_steady_reader_is_not_closed_as_idle_while_the_response_waits_for_it(
) -> None:  # fmt: skip
    """/answer is written after its handler returned, so its idle deadline runs: while
    writing is paused the connection is not idle (``response_write_timeout`` applies)."""
    async with serving(64 * 1024, response_write_timeout=f"{TIMEOUT}s",
                       keepalive_timeout=f"{TIMEOUT}s") as served:  # fmt: skip
        received, seconds = await fetch_slowly(served, "/answer")
        assert body_of(received) == BODY
        assert seconds > 2 * TIMEOUT + LINGER, seconds
        assert served.guard.stats()["closed_slow_readers"] == 0


async def test_what_a_response_still_has_to_send_counts_the_kernels_send_queue() -> None:
    """All of it is watched for progress: the kernel's send queue (grown to megabytes as
    the kernel sees fit) drains for seconds before the transport's own buffer shrinks
    (the socket is writable again once a third of it is free), and a steady reader
    would look stuck. Sent, less what the client's socket holds, is what is unsent."""
    async with serving(response_write_timeout="30s") as served:
        client = await raw_client(served.address)
        try:
            await asyncio.get_running_loop().sock_sendall(client, get("/large"))
            await until(lambda: served.started == ["/large"], 5)
            await asyncio.sleep(0.3)  # the kernel took what it takes
            (conn,) = served.guard.by_handler.values()
            assert conn.transport is not None
            in_client = int.from_bytes(fcntl.ioctl(client.fileno(), termios.FIONREAD,
                                                   bytes(4)), sys.byteorder)  # fmt: skip
            unsent = len(BODY) - in_client  # and the response's head, ~100 bytes
            assert abs(conn._unsent_bytes() - unsent) < 16384, (conn._unsent_bytes(), unsent)
            assert conn.transport.get_write_buffer_size() < unsent
        finally:
            client.close()


async def test_over_tls_a_client_that_never_reads_is_aborted_and_a_steady_one_is_served(
) -> None:  # fmt: skip
    async with serving(response_write_timeout=f"{TIMEOUT}s", use_tls=True) as served:
        _, stalled = await tls_client(served.address)
        reader, writer = await tls_client(served.address, receive_buffer=256 * 1024)
        try:
            stalled.write(get("/chunks"))
            stop_reading(stalled)
            writer.write(get("/chunks"))
            started = time.monotonic()
            received = await read_slowly(lambda: reader.read(512 * 1024), served)
            assert body_of(received) == BODY
            assert time.monotonic() - started > 2 * TIMEOUT
            stats = served.guard.stats()
            assert (stats["closed_slow_readers"], stats["open"]) == (1, 1), stats
            assert served.started == served.finished == ["/chunks"] * 2
        finally:
            stalled.close()
            writer.close()


async def test_over_tls_a_client_not_reading_a_sent_response_is_gone_linger_after_idle(
) -> None:  # fmt: skip
    """Over TLS a response written in one piece passes the TLS layer at once, so writing
    is not paused and the handler returns: the idle deadline applies, then ``LINGER`` to
    flush. That abort did nothing before: aiohttp closes an idle connection too, and the
    TLS transport, closed twice, forgot its TLS layer (the socket went 30 s later, at
    the TLS shutdown's own timeout)."""
    async with serving(response_write_timeout=f"{TIMEOUT}s", keepalive_timeout="1s",
                       use_tls=True) as served:  # fmt: skip
        _, writer = await tls_client(served.address)
        try:
            writer.write(get("/large"))
            stop_reading(writer)
            await until(lambda: served.finished == ["/large"], 5)
            seconds = await until(lambda: served.guard.stats()["open"] == 0, 1 + LINGER + SLACK)
            assert seconds > 1, seconds
            assert served.guard.stats()["closed_idle"] == 1
        finally:
            writer.close()


@pytest.mark.parametrize("value", ["soon", "-1s", "1 fortnight", [5]])
def test_a_bad_response_write_timeout_is_refused_at_load_naming_the_option(
    value: object,
) -> None:
    with pytest.raises(ConfigError, match=(
            r"invalid value for 'response_write_timeout' in kumo.start_http_listener: "
            r"expected a number of seconds or a string like '30s'")):  # fmt: skip
        HttpListenerConfig.from_options({"response_write_timeout": value})


def test_response_write_timeout_defaults_to_30s_and_reaches_the_listeners_guard() -> None:
    assert HttpListenerConfig.from_options({}).response_write_timeout == 30.0
    config = HttpListenerConfig.from_options({"response_write_timeout": "2m"})
    assert GuardedSite(config).guard.response_write_timeout == 120.0


async def test_kumo_http_listener_aborts_an_untrusted_client_not_reading_the_openapi_document(
    start_http: StartHttp,
) -> None:
    """The real listener and an endpoint anyone may call: 100 requests for the OpenAPI
    document (about 7 MB of answers) sent at once, none of the answers read."""
    env = await start_http(response_write_timeout=f"{TIMEOUT}s")
    guard = env.listener.guard
    client = await raw_client(env.listener.address)
    try:
        await asyncio.get_running_loop().sock_sendall(
            client, get("/api-docs/openapi.json") * 100)
        await until(lambda: guard.stats()["open"] == 1, 5)
        seconds = await until(lambda: guard.stats()["open"] == 0, TIMEOUT + SLACK)
        assert seconds > TIMEOUT * 0.8, seconds
        assert guard.stats()["closed_slow_readers"] == 1
    finally:
        client.close()
