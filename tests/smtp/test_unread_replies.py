"""A client that never reads its replies (found by an outside check): the session meets
``client_timeout`` while the server waits to write, and a closed connection whose last
replies are never taken is aborted after :data:`CLOSE_GRACE` instead of keeping its socket
(and about 3 MB of kernel buffers) for ever, counted by no limit."""

from __future__ import annotations

import asyncio
import time

import pytest

from kumocore.reception.smtp import protocol
from tests.smtp.conftest import StartSmtp

#: EHLO with a long name: each reply echoes it, so the replies outgrow the socket buffers.
EHLO = "EHLO " + "h" * 900 + ".example\r\n"


async def _flood(port: int, lines: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect from an untrusted address and send ``lines`` without reading anything."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=("127.0.0.5", 0), limit=16 * 1024)
    writer.write(lines)
    return reader, writer


async def _reset_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server aborted the connection (RST) within ``seconds``; reading only
    starts then, so a server that waits for us to take its replies never gets them."""
    await asyncio.sleep(seconds)
    try:
        while await asyncio.wait_for(reader.read(1 << 20), 2):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False  # still open: nothing ended it
    return False  # a clean EOF: the replies were flushed because we read them


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "CLOSE_GRACE", 0.5)


async def test_a_client_that_never_reads_its_replies_meets_client_timeout(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(client_timeout="1s", max_junk_commands=1_000_000)
    started = time.monotonic()
    reader, writer = await _flood(env.port, (EHLO * 6000).encode())
    while env.listener.sessions and time.monotonic() - started < 10:
        await asyncio.sleep(0.1)
    assert not env.listener.sessions, "the session waited for ever to write its replies"
    assert await _reset_within(reader, 1.0)
    writer.transport.abort()


async def test_a_client_that_never_reads_its_replies_meets_max_session_duration(
    start_smtp: StartSmtp,
) -> None:
    # The session's 421 cannot be flushed either: the socket is aborted after the grace.
    env = await start_smtp(max_session_duration="1s", max_junk_commands=1_000_000)
    started = time.monotonic()
    reader, writer = await _flood(env.port, (EHLO * 6000).encode())
    while env.listener.sessions and time.monotonic() - started < 10:
        await asyncio.sleep(0.1)
    assert not env.listener.sessions, "max_session_duration waited for the client to read"
    assert await _reset_within(reader, 1.0), "the closed socket waited for the client"
    writer.transport.abort()
