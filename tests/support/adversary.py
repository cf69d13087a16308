"""What other clients see while an attacker works on a listener: a well-behaved client's
transaction time, and the process's resident memory (the listener runs in the test's
process, so its growth is the server's).

    async with LoopTicker() as ticker:
        attack = asyncio.ensure_future(attacker())
        times = await probe_while(env, attack)
    assert ticker.longest < 0.1
"""

from __future__ import annotations

import asyncio
import os
import time

from tests.smtp.conftest import SmtpEnv

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    """The process's resident memory now, in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE / 2**20


async def probe_transaction(env: SmtpEnv) -> float:
    """Seconds for one whole transaction of a client in ``relay_hosts``, connect to QUIT."""
    start = time.perf_counter()
    client = await env.session()
    _, final = await client.send_mail(
        "a@example.com", ["b@example.com"], "Subject: probe\r\n\r\nhi\r\n"
    )
    assert final.code == 250, final
    await client.close()
    return time.perf_counter() - start


async def probe_while(
    env: SmtpEnv, attack: asyncio.Future[object], *, at_least: int = 3
) -> list[float]:
    """Transaction times of a probing client, one after another until ``attack`` is
    done (and at least ``at_least`` of them)."""
    times: list[float] = []
    while not attack.done() or len(times) < at_least:
        times.append(await probe_transaction(env))
        await asyncio.sleep(0.005)
    return times
