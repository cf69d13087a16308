"""The HTTP listener of a trusted-hosts service (``kumocore tsa serve``, the proxy server's
``proxy.start_http_listener``): only trusted hosts are served, and every peer's
connections are bounded as ``kumo.start_http_listener``'s are (count per peer, headers
within ``header_timeout``, idle connections closed after ``keepalive_timeout``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kumocore.config.http_listener import HttpListenerConfig
from kumocore.errors import ConfigError
from kumocore.http.service import ServiceListener, start_service_listener

UNTRUSTED = "127.0.0.5"
PATHS = {"/hello": {"get": {"summary": "Says hello", "responses": {"200": {"description": "hi"}}}}}
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _routes(app: web.Application) -> None:
    async def hello(_: web.Request) -> web.StreamResponse:
        return web.Response(text="hello")

    async def subscribe(request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await asyncio.sleep(2.5)  # quiet for longer than keepalive_timeout
        await socket.send_str("still here")
        await socket.close()
        return socket

    async def echo(request: web.Request) -> web.StreamResponse:
        return web.Response(body=await request.read())

    app.router.add_get("/hello", hello)
    app.router.add_post("/echo", echo)
    app.router.add_get("/subscribe", subscribe)


@contextlib.asynccontextmanager
async def listening(**options: Any) -> AsyncIterator[ServiceListener]:
    config = HttpListenerConfig.from_options({"listen": "127.0.0.1:0", **options})
    listener = await start_service_listener(config, _routes, function="test.listener",
                                            title="test service", paths=PATHS)  # fmt: skip
    try:
        yield listener
    finally:
        await listener.close()
        for writer in OPEN:
            writer.close()
        OPEN.clear()


OPEN: list[asyncio.StreamWriter] = []


async def _connect(listener: ServiceListener, source: str = UNTRUSTED) -> Stream:
    stream = await asyncio.open_connection(*listener.address, local_addr=(source, 0))
    OPEN.append(stream[1])
    return stream


async def _get(stream: Stream) -> bytes:
    reader, writer = stream
    writer.write(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def _closed(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1024), within) == b""
    except ConnectionError:
        return True


async def test_a_trusted_host_is_served_and_another_peer_gets_a_json_401() -> None:
    async with listening() as listener:
        assert (await _get(await _connect(listener, "127.0.0.1"))).endswith(b"hello")
        refused = await _get(await _connect(listener))
        assert refused.startswith(b"HTTP/1.1 401 ")
        assert refused.endswith(b'{"error": "127.0.0.5 is not a trusted host"}')


async def test_a_byte_at_a_time_client_ends_at_header_timeout_and_a_silent_one_when_idle(
) -> None:  # fmt: skip
    async with listening(header_timeout="1s", keepalive_timeout="2s") as listener:
        silent = await _connect(listener)
        slow_reader, slow_writer = await _connect(listener)
        started = time.monotonic()
        answer = b""
        for byte in b"GET /hello HTTP/1.1\r\nHost: x\r\n":  # a byte every 0.2 s: 6 s in all
            slow_writer.write(bytes((byte,)))
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(slow_reader.read(1024), 0.2)
                break
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"header_timeout" in answer
        assert time.monotonic() - started < 3
        assert await _closed(silent[0], within=3)  # never sent a byte: idle
        stats = listener.guard.stats()
        assert (stats["closed_slow_headers"], stats["closed_idle"]) == (1, 1)


async def test_a_connection_idle_after_its_answer_is_closed_at_keepalive_timeout() -> None:
    async with listening(keepalive_timeout="1s") as listener:
        stream = await _connect(listener, "127.0.0.1")
        assert (await _get(stream)).endswith(b"hello")
        started = time.monotonic()
        assert await _closed(stream[0], within=5)
        assert time.monotonic() - started < 3


async def test_a_quiet_websocket_subscriber_is_not_idle() -> None:
    async with listening(keepalive_timeout="1s") as listener, aiohttp.ClientSession() as http:
        host, port = listener.address
        async with http.ws_connect(f"http://{host}:{port}/subscribe") as subscription:
            message = await asyncio.wait_for(subscription.receive(), 5)
        assert message.data == "still here"
        assert listener.guard.stats()["closed_idle"] == 0


async def test_one_peer_holds_at_most_max_connections_per_peer_and_a_freed_place_is_reusable(
) -> None:  # fmt: skip
    async with listening(max_connections_per_peer=4) as listener:
        held = [await _connect(listener) for _ in range(4)]
        reader, _ = await _connect(listener)
        answer = await asyncio.wait_for(reader.read(), 5)  # answered and closed at once
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"max_connections_per_peer 4" in answer
        assert (await _get(await _connect(listener, "127.0.0.1"))).endswith(b"hello")
        held[0][1].close()
        await asyncio.sleep(0.2)
        assert (await _get(await _connect(listener))).startswith(b"HTTP/1.1 401 ")


async def test_an_address_in_use_is_a_config_error_naming_the_function() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = HttpListenerConfig.from_options({"listen": f"127.0.0.1:{port}"})
        with pytest.raises(ConfigError, match=rf"test.listener: cannot listen on 127.0.0.1:{port}"):
            await start_service_listener(config, _routes, function="test.listener",
                                         title="test service", paths=PATHS)  # fmt: skip


async def test_its_document_lists_its_own_routes_and_what_every_service_listener_serves() -> None:
    async with listening() as listener, aiohttp.ClientSession() as http:
        host, port = listener.address
        async with http.get(f"http://{host}:{port}/api-docs/openapi.json") as response:
            document = await response.json()
        assert document["info"]["title"] == "test service"
        assert sorted(document["paths"]) == [
            "/api-docs/openapi.json", "/api/admin/set_diagnostic_log_filter/v1", "/hello",
            "/rapidoc"]  # fmt: skip
        async with http.get(f"http://{host}:{port}/rapidoc") as response:
            assert response.content_type == "text/html"
            assert 'spec-url="/api-docs/openapi.json"' in await response.text()


async def test_the_diagnostic_log_filter_is_set_and_a_bad_one_is_a_json_400() -> None:
    async with listening() as listener, aiohttp.ClientSession() as http:
        host, port = listener.address
        url = f"http://{host}:{port}/api/admin/set_diagnostic_log_filter/v1"
        async with http.post(url, json={"filter": "kumod=info"}) as response:
            assert response.status == 200
        async with http.post(url, json={"filter": "kumod=loud"}) as response:
            assert response.status == 400
            assert "unknown level" in (await response.json())["error"]


async def test_a_trusted_browser_cannot_be_made_to_post_from_another_site_or_a_rebound_name(
) -> None:  # fmt: skip
    """A node may name the service by any DNS name; a browser only by its address."""
    async with listening() as listener, aiohttp.ClientSession() as http:
        host, port = listener.address
        url = f"http://{host}:{port}/echo"
        async with http.post(url, data="x", headers={"Content-Type": "text/plain"}) as response:
            assert response.status == 415  # a "simple" cross-site POST needs no preflight
        foreign = {"Origin": "https://evil.example", "Content-Type": "application/json"}
        async with http.post(url, data="{}", headers=foreign) as response:
            assert response.status == 403
        rebound = {"Host": f"evil.example:{port}", "Sec-Fetch-Mode": "cors"}
        async with http.get(f"http://{host}:{port}/hello", headers=rebound) as response:
            assert response.status == 403
            assert "DNS rebinding" in (await response.json())["error"]
        by_name = {"Host": f"tsa.fleet.example:{port}"}  # a node, not a browser
        async with http.get(f"http://{host}:{port}/hello", headers=by_name) as response:
            assert response.status == 200
        async with http.post(url, json={"ok": True}) as response:
            assert (response.status, await response.read()) == (200, b'{"ok": true}')
