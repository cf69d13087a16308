"""Large ``/api/inject/v1`` bodies arriving together are decoded and checked a few at a
time (kumocore.node.work_budget), so thirty 2 MB requests neither hold every one of
them decoded at once nor make other clients wait for all of them.

Measured on a real ``kumocore serve`` worker (its memory its own, another client's EHLO
across a socket). Each request has 80,000 recipients and a template that does not
compile, so it is checked in full and refused (``422``) with nothing generated: the
test measures the checking.
"""

from __future__ import annotations

import asyncio
import io

import aiohttp
import pytest

from tests.support.serve_worker import Worker, ehlo_seconds

pytestmark = pytest.mark.serial  # it measures latency: other test processes would add theirs

REQUESTS, RECIPIENTS = 30, 80_000  # 1.9 MB each, within request_body_limit


def _body(count: int) -> bytes:
    recipients = ",".join(f'{{"email":"r{n}@e.co"}}' for n in range(count))
    return ('{"envelope_sender":"s@sender.example","content":"Subject: {{ broken\\r\\n\\r\\n'
            'hi","recipients":[' + recipients + "]}").encode()


async def test_thirty_large_requests_at_once_are_checked_a_few_at_a_time(
    worker: Worker,
) -> None:
    body = _body(RECIPIENTS)
    connector = aiohttp.TCPConnector(limit=0)  # all thirty at once
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> int:
            async with session.post(f"http://127.0.0.1:{worker.http}/api/inject/v1",
                                    data=io.BytesIO(body),
                                    headers={"Content-Type": "application/json"}) as response:
                return response.status

        posts = [asyncio.ensure_future(post()) for _ in range(REQUESTS)]
        waits: list[float] = []
        async with asyncio.timeout(120):
            while not all(task.done() for task in posts):
                waits.append(await ehlo_seconds(worker.smtp))
                await asyncio.sleep(0.05)
        statuses = [task.result() for task in posts]
    _, peak = worker.rss_mib()
    assert statuses == [422] * REQUESTS  # every one checked in full, then refused
    # All checked at once, on the loop: peak 1,206 MiB, the longest EHLO 0.85 s (on
    # worker threads, as before the thirty-second round: 768 MiB and 3.9 s).
    # Two at a time: 243 MiB and 0.11 s.
    assert peak < 500, peak
    assert max(waits) < 0.5, sorted(waits)[-5:]
