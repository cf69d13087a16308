"""An HTTPS listener admits a connection before its TLS handshake: the caps count
connections that never finish one, and the handshake has ``header_timeout`` to end.

Before, the server shook hands first (``create_server(ssl=...)``) and the guard saw a
connection only afterwards: a listener capped at 200 connections held 6,000 that never
sent a ClientHello, about 3,000 descriptors per worker."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

from bench.common.smtp_client import insecure_client_context
from tests.http.conftest import HttpEnv, StartHttp

UNTRUSTED = "127.0.0.5"


async def silent_connection(env: HttpEnv, source: str = UNTRUSTED) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = env.listener.address
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when the server closed the connection (EOF or reset) within ``seconds``."""
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


async def https_liveness(env: HttpEnv) -> int:
    status, _, _ = await env.request("GET", "/api/check-liveness/v1",
                                     ssl_context=insecure_client_context())
    return status


async def test_connections_without_a_tls_handshake_count_against_max_connections(
    start_http: StartHttp,
) -> None:
    env = await start_http(use_tls=True, max_connections=16, header_timeout="30s",
                           max_connections_per_peer=100)
    guard = env.listener.guard
    room = guard.max_connections - guard.reserved  # the last places are the trusted's
    held = [await silent_connection(env) for _ in range(room)]
    over = [await silent_connection(env) for _ in range(8)]
    try:
        await asyncio.sleep(0.2)
        assert guard.stats()["open"] == room
        # Over the cap: closed at once, without a plain-text answer a TLS client
        # could not read, and without a handshake.
        for reader, _ in over:
            assert await closed_within(reader, 5)
        assert guard.stats()["refused"] >= 8
        for reader, _ in held:  # the admitted ones still wait for their ClientHello
            assert not await closed_within(reader, 0.05)
    finally:
        for _, writer in held + over:
            writer.close()
    await asyncio.sleep(0.3)
    assert guard.stats()["open"] == 0  # closed before a handshake: the places come back
    assert await https_liveness(env) == 200


async def test_connections_without_a_tls_handshake_count_against_the_per_peer_cap(
    start_http: StartHttp,
) -> None:
    env = await start_http(use_tls=True, max_connections_per_peer=4, header_timeout="30s")
    held = [await silent_connection(env) for _ in range(4)]
    try:
        reader, writer = await silent_connection(env)
        assert await closed_within(reader, 5)
        writer.close()
        assert await https_liveness(env) == 200  # another client (127.0.0.1) gets in
    finally:
        for _, w in held:
            w.close()


async def test_a_tls_handshake_not_finished_within_header_timeout_is_closed(
    start_http: StartHttp,
) -> None:
    env = await start_http(use_tls=True, header_timeout="1s")
    guard = env.listener.guard
    reader, writer = await silent_connection(env)
    started = time.monotonic()
    assert await closed_within(reader, 10)
    writer.close()
    assert 0.5 < time.monotonic() - started < 5
    await asyncio.sleep(0.1)
    assert guard.stats()["failed_handshakes"] == 1
    assert guard.stats()["open"] == 0


async def test_a_failed_tls_handshake_gives_its_place_back(start_http: StartHttp) -> None:
    env = await start_http(use_tls=True, max_connections_per_peer=2)
    guard = env.listener.guard
    for _ in range(5):  # a plain-text request where TLS is spoken: the handshake fails
        reader, writer = await silent_connection(env)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await closed_within(reader, 5)
        writer.close()
    await asyncio.sleep(0.1)
    assert guard.stats()["failed_handshakes"] == 5
    assert guard.stats()["open"] == 0
    assert await https_liveness(env) == 200


async def test_a_request_sent_with_the_last_handshake_flight_is_answered(
    start_http: StartHttp,
) -> None:
    # TLS 1.3 lets the client's first request ride with its Finished message, so the
    # listener may decrypt it before it has handed the connection to aiohttp.
    env = await start_http(use_tls=True)
    host, port = env.listener.address
    context = insecure_client_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    for _ in range(20):
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        writer.write(b"GET /api/check-liveness/v1 HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 200 "), answer
