"""A response body written as it is made (kumocore.http.stepwise_body): whole for a
client that reads it, and for one that goes away part way, the rest is not made and
nothing is logged as an error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web

from kumocore.http.stepwise_body import stream_parts

PARTS = 2_000
PART = b"x" * 50_000


async def _serve(made: list[int]) -> tuple[web.AppRunner, int]:
    def parts() -> Iterator[bytes]:
        for n in range(PARTS):
            made.append(n)
            yield PART

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_parts(request, parts(), "application/octet-stream")

    app = web.Application()
    app.router.add_get("/big", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _get(port: int, read: int | None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    got = await reader.read(read) if read is not None else await reader.read()
    writer.transport.abort()
    return got


async def test_a_client_reading_everything_gets_every_part_chunked() -> None:
    made: list[int] = []
    runner, port = await _serve(made)
    try:
        got = await _get(port, None)
    finally:
        await runner.cleanup()
    assert b"Transfer-Encoding: chunked" in got.split(b"\r\n\r\n", 1)[0]
    assert got.count(PART) == PARTS and got.endswith(b"0\r\n\r\n")


async def test_a_client_leaving_part_way_stops_the_making_and_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    made: list[int] = []
    runner, port = await _serve(made)
    try:
        with caplog.at_level(logging.DEBUG, logger="aiohttp"):
            await _get(port, 1_000)
            for _ in range(200):  # until the writer notices
                await asyncio.sleep(0.01)
                if len(made) < PARTS and not runner.server.connections:  # type: ignore[union-attr]
                    break
    finally:
        await runner.cleanup()
    assert len(made) < PARTS
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
