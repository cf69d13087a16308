"""kumo.http.connect_websocket against a real aiohttp websocket server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

import kumocore.http.websocket_client as websocket_client
from kumocore.errors import ConfigError
from kumocore.http.websocket_client import connect_websocket

from .support import Recorder, load


class WsServer:
    """Sends what a test queues, then closes when told; records how each peer left."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.closed_by_peer = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        ws.headers["X-Server"] = "test-ws"
        await ws.prepare(request)
        reader = asyncio.ensure_future(ws.receive())  # sees the client's close frame
        while True:
            getter = asyncio.ensure_future(self.outbox.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                getter.cancel()
                self.closed_by_peer.set()
                return ws
            item = getter.result()
            if item is None:
                reader.cancel()
                await ws.close()
                return ws
            await (ws.send_str(item) if isinstance(item, str) else ws.send_bytes(item))


async def _plain(request: web.Request) -> web.Response:
    return web.Response(text="not a websocket")


@pytest.fixture
async def ws_server() -> AsyncIterator[WsServer]:
    server = WsServer()
    app = web.Application()
    app.router.add_get("/ws", server.handle)
    app.router.add_get("/plain", _plain)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"ws://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


async def test_lua_receives_text_and_binary_then_nil_when_the_peer_closes(
    tmp_path: Path, ws_server: WsServer
) -> None:
    for item in ("hello", b"\x00\xff", "last", None):
        ws_server.outbox.put_nowait(item)
    recorder = Recorder()
    recorder.value = ws_server.url + "/ws"
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local stream, response = kumo.http.connect_websocket(kumo.test.value())
        kumo.test.mark({ response:status_code(), response:headers()['x-server'] })
        local a, b, c, d = stream:recv(), stream:recv(), stream:recv(), stream:recv()
        kumo.test.mark({ a, #b, string.byte(b, 2), c, d == nil })
    """,
        recorder=recorder,
    )
    assert recorder.marks == [[101, "test-ws"], ["hello", 2, 255, "last", True]]


async def test_recv_batch_collects_until_the_duration_then_errors_once_closed(
    ws_server: WsServer,
) -> None:
    stream, _ = await connect_websocket(ws_server.url + "/ws")
    assert await stream.recv_batch(0.1) == []  # nothing sent: an empty batch
    for item in ("one", "two"):
        ws_server.outbox.put_nowait(item)
    assert await stream.recv_batch("300ms") == ["one", "two"]
    ws_server.outbox.put_nowait("three")
    ws_server.outbox.put_nowait(None)
    assert await stream.recv_batch(2) == ["three"]  # the close ends the batch early
    with pytest.raises(ConfigError, match="websocket closed"):
        await stream.recv_batch(2)
    await stream.close()


async def test_a_message_over_the_size_limit_fails_recv_and_closes(
    ws_server: WsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_client, "MAX_MESSAGE_SIZE", 1024)
    stream, _ = await connect_websocket(ws_server.url + "/ws")
    ws_server.outbox.put_nowait("x" * 1024)  # at the limit: accepted
    ws_server.outbox.put_nowait("y" * 1025)
    assert await stream.recv() == "x" * 1024
    with pytest.raises(ConfigError, match="a message is larger than 1024 bytes"):
        await stream.recv()
    assert await stream.recv() is None
    await asyncio.wait_for(ws_server.closed_by_peer.wait(), 5)


async def test_the_handshake_is_bounded_by_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # accepts, never answers the upgrade

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(websocket_client, "CONNECT_TIMEOUT", 0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConfigError, match=r"no handshake within 0\.3 s"):
        await connect_websocket(f"ws://127.0.0.1:{port}/")
    assert loop.time() - started < 2
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_connect_cancelled_mid_handshake_closes_its_http_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A policy task stopped at shutdown (or `kumocore validate` ending) while connecting:
    # its session was left open ("Unclosed client session" at exit).
    import aiohttp

    sessions: list[aiohttp.ClientSession] = []
    original = aiohttp.ClientSession

    def recording(*args: object, **kw: object) -> aiohttp.ClientSession:
        sessions.append(original(*args, **kw))  # type: ignore[arg-type]
        return sessions[-1]

    monkeypatch.setattr(websocket_client.aiohttp, "ClientSession", recording)
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    task = asyncio.ensure_future(connect_websocket(f"ws://127.0.0.1:{port}/"))
    while not writers:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [s.closed for s in sessions] == [True]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_http_urls_and_non_websocket_endpoints_are_refused(ws_server: WsServer) -> None:
    http_url = ws_server.url.replace("ws://", "http://")
    with pytest.raises(ConfigError, match="is not a ws:// or wss:// URL"):
        await connect_websocket(http_url + "/ws")
    with pytest.raises(ConfigError, match="/plain"):
        await connect_websocket(ws_server.url + "/plain")


async def test_close_and_a_dropped_stream_both_close_the_connection(
    ws_server: WsServer,
) -> None:
    stream, _ = await connect_websocket(ws_server.url + "/ws")
    await stream.close()
    await asyncio.wait_for(ws_server.closed_by_peer.wait(), 5)

    ws_server.closed_by_peer.clear()
    stream, _ = await connect_websocket(ws_server.url + "/ws")
    del stream
    gc.collect()
    await asyncio.wait_for(ws_server.closed_by_peer.wait(), 5)
