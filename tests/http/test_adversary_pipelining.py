"""HTTP/1.1 requests an attacker pipelines and never reads the answers to, and requests
with as many headers as it can send.

aiohttp answers pipelined requests one at a time and stops reading the socket while an
answer cannot be written, so a client that sends 300,000 requests and reads nothing
holds what the kernel buffers, not what it sent (measured: 122,000 requests pushed
before the client's writes stalled, RSS +1.4 MiB). A request with more than 128 header
lines is ``400 Too many headers received`` (aiohttp's limit), so one request's headers
are at most 128 x 8 KiB.
"""

from __future__ import annotations

import asyncio
import time

from tests.http.conftest import HttpEnv
from tests.support.adversary import rss_mib
from tests.support.ticker import LoopTicker

GET = b"GET /api/check-liveness/v1 HTTP/1.1\r\nHost: localhost\r\n\r\n"


async def _liveness_time(http: HttpEnv) -> float:
    started = time.perf_counter()
    status, _, _ = await http.request("GET", "/api/check-liveness/v1")
    assert status == 200
    return time.perf_counter() - started


async def test_pipelined_requests_never_read_cost_neither_memory_nor_other_clients(
    http: HttpEnv,
) -> None:
    host, port = http.listener.address
    reader, writer = await asyncio.open_connection(host, port, local_addr=("127.0.0.5", 0))
    before = rss_mib()
    sent = 0
    async with LoopTicker() as ticker:
        try:
            for _ in range(300):
                writer.write(GET * 1000)
                sent += 1000
                await asyncio.wait_for(writer.drain(), 0.5)
        except TimeoutError:
            pass  # the server stopped reading: the point
        probes = [await _liveness_time(http) for _ in range(5)]
    grown = rss_mib() - before
    writer.transport.abort()
    assert sent < 300_000, "the server read everything it was sent"
    assert grown < 32, f"RSS grew {grown:.0f} MiB"
    assert ticker.longest < 0.2, ticker.longest
    assert max(probes) < 0.5, probes
    assert reader is not None


async def test_a_request_with_too_many_headers_is_refused(http: HttpEnv) -> None:
    host, port = http.listener.address
    reader, writer = await asyncio.open_connection(host, port, local_addr=("127.0.0.5", 0))
    line = b"X-A: " + b"a" * 8000 + b"\r\n"
    writer.write(b"GET /api/check-liveness/v1 HTTP/1.1\r\nHost: localhost\r\n" + line * 200)
    writer.write(b"\r\n")
    answer = await asyncio.wait_for(reader.read(200), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400"), answer
    assert b"Too many headers" in answer
