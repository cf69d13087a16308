"""Command lines an attacker makes as long as it likes.

A command line over ``line_length_hard_limit`` is skipped as it arrives, never buffered,
and answered ``500 5.2.3`` once its CRLF comes; the session then goes on. One line that
never ends costs the listener reading it (measured: 1.7 GB pushed in 2 s over loopback)
but no memory, and the other clients' transactions stay as fast as when idle
(worst probe 15 ms against 1.4 ms idle, event loop's longest gap 2.6 ms).
"""

from __future__ import annotations

import asyncio
import time

from tests.smtp.conftest import StartSmtp
from tests.support.adversary import probe_while, rss_mib
from tests.support.ticker import LoopTicker

SECONDS = 1.0


async def test_an_endless_command_line_costs_no_memory_and_no_other_clients_time(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp()
    attacker = await env.session("127.0.0.5")
    (session,) = env.listener.sessions
    buffered: list[int] = []

    async def attack() -> int:
        sent = 0
        chunk = b"A" * 65536
        end = time.perf_counter() + SECONDS
        while time.perf_counter() < end:
            attacker.writer.write(chunk)
            await attacker.writer.drain()
            sent += len(chunk)
            buffered.append(len(session._reader._buffer))  # type: ignore[attr-defined]
        return sent

    before = rss_mib()
    async with LoopTicker() as ticker:
        task = asyncio.ensure_future(attack())
        probes = await probe_while(env, task)
    grown = rss_mib() - before
    assert task.result() > 50 * 2**20  # the attacker was not simply stopped
    assert max(buffered) <= 2 * env.listener.config.line_length_hard_limit + 256 * 1024
    assert grown < 32, f"RSS grew {grown:.0f} MiB"
    assert ticker.longest < 0.2, (ticker.longest, max(probes))
    assert max(probes) < 0.5, probes
    # The line finally ends: one refusal, and the session goes on.
    reply = await attacker.command("")
    assert str(reply) == "500 5.2.3 line too long"
    assert (await attacker.command("NOOP")).code == 250
