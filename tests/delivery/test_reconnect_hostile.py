"""Hostile MX hosts against ``reconnect_strategy``: an MX that ends every connection on
its own must not draw the session into reconnecting without end. A connection the MX
ended while the session idled puts its message back uncounted, so an MX that could end
each connection before its first transaction would get connection after connection;
the session's check for replies nobody asked for, and the pipelined MAIL FROM that
reaches the MX first, make that attempt count instead."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.delivery.conftest import ADDRESSES


class _HangUpAfterEhlo:
    """An MX on host a that greets, answers EHLO and at once says ``421`` unasked and
    hangs up: every connection ends before its first transaction could."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> _HangUpAfterEhlo:
        self._server = await asyncio.start_server(self._session, ADDRESSES["a"], 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            writer.write(b"220 hostile ESMTP\r\n")
            await reader.readline()  # EHLO
            writer.write(b"250-hostile\r\n250 PIPELINING\r\n")
            await writer.drain()
            await asyncio.sleep(0)  # a segment of its own, right behind the EHLO reply
            writer.write(b"421 4.3.2 bye\r\n")
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()


@pytest.mark.parametrize("strategy", ["ReconnectSameHost", "ConnectNextHost"])
async def test_an_mx_that_hangs_up_after_ehlo_gets_one_connection_per_counted_attempt(
    farm_bench: Any, strategy: str
) -> None:
    async with _HangUpAfterEhlo() as mx:
        bench = await farm_bench(mx.port, path={"reconnect_strategy": strategy})
        message = await bench.inject("one@one.example")
        await bench.wait_for_records("TransientFailure", 1)
        await asyncio.sleep(1.0)  # no reconnection follows (retry_interval is 1h)
        (failure,) = bench.log_sink.of_type("TransientFailure")
        assert failure["response"]["code"] in (400, 421)  # the unasked 421, or the breach
        assert mx.connections == 1 and message.num_attempts == 1
