"""A client pipelining a huge backlog must not stall the other sessions (issue 14,
finding 3): the listener answers a bounded number of commands per event-loop turn and
reads only a bounded backlog ahead."""

from __future__ import annotations

import asyncio
import time

from bench.common.smtp_client import RawSmtpClient
from tests.smtp.conftest import SmtpEnv, StartSmtp

COMMANDS = 200_000


async def _probe(env: SmtpEnv) -> float:
    """Seconds for one complete transaction on a fresh connection."""
    start = time.perf_counter()
    client = await env.session()
    _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: p\r\n\r\n")
    assert final.code == 250
    await client.close()
    return time.perf_counter() - start


async def _flood(client: RawSmtpClient, done: asyncio.Event) -> int:
    """Pipeline NOOPs and read the replies as they come; the number answered."""
    async def write() -> None:
        chunk = b"NOOP\r\n" * 1000
        for _ in range(COMMANDS // 1000):
            client.writer.write(chunk)
            await client.writer.drain()

    writer = asyncio.ensure_future(write())
    answered = 0
    while answered < COMMANDS and not done.is_set():
        line = await client.reader.readline()
        if not line:
            break
        answered += 1
    writer.cancel()
    return answered


async def test_a_pipelining_flood_does_not_stall_other_sessions(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_junk_commands=10 * COMMANDS)
    baseline = min([await _probe(env) for _ in range(3)])
    attacker = await env.session("127.0.0.5")
    done = asyncio.Event()
    flood = asyncio.ensure_future(_flood(attacker, done))
    await asyncio.sleep(0.2)  # the flood is under way
    during = []
    for _ in range(5):
        during.append(await _probe(env))
        await asyncio.sleep(0.02)
    done.set()
    answered = await flood
    assert answered > 1000, "the flood was answered too"
    # The probe's five round trips each wait at most a few 8-command turns of the flood.
    # Generous bound for a loaded machine; bench/reliability/sec_smtp.py measures it.
    assert max(during) - baseline < 0.25, (baseline, during)


async def test_the_backlog_read_ahead_is_bounded(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_junk_commands=10 * COMMANDS)
    attacker = await env.session("127.0.0.5")
    # Send a large backlog and never read a reply: the session must stop reading.
    attacker.writer.write(b"NOOP\r\n" * COMMANDS)
    await asyncio.sleep(0.5)
    (session,) = env.listener.sessions
    buffered = len(session._reader._buffer)  # type: ignore[attr-defined]
    assert buffered <= 2 * env.listener.config.line_length_hard_limit + 256 * 1024
    assert session.transport is not None
    assert session.transport.get_write_buffer_size() <= 256 * 1024
    attacker.writer.transport.abort()
