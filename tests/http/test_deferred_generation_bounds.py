"""What queued ``deferred_generation`` requests cost the node's other clients is bounded,
whatever the generator queue's ``connection_limit``.

The generator queue expanded as many requests at once as its ``connection_limit`` (32 by
default, as KumoMTA). Each one held its decoded recipients and took a turn of the event
loop per chunk of messages, so an SMTP client waited for a chunk of every one of them, and
the worker's memory grew with their count: 40 requests of 2 MB took 952 MiB, and an EHLO
177 ms typically, 1.5 s at worst. A node now expands at most a few requests (4 MiB of
request JSON) at once (kumocore.node.work_budget), and checks and builds them on
its event loop a slice at a time (kumocore.node.stepwise), not on worker threads that
compete with the loop for the GIL.

A real ``kumocore serve`` worker, so that its memory is its own and the client's latency
is measured across a socket, as any other client's would be. Generated messages go to the
null queue: the test measures the expansion, not the delivery.
"""

from __future__ import annotations

import asyncio
import io
import statistics

import aiohttp
import pytest

from tests.support.serve_worker import Worker, ehlo_seconds

pytestmark = pytest.mark.serial  # it measures latency: other test processes would add theirs

JSON = {"Content-Type": "application/json"}
REQUESTS, RECIPIENTS = 16, 80_000  # 1.9 MB each: sixteen within the connection limit


def _body(count: int) -> bytes:
    recipients = ",".join(f'{{"email":"r{n}@e.co"}}' for n in range(count))
    return ('{"envelope_sender":"s@sender.example","deferred_generation":true,'
            '"content":"Subject: x\\r\\n\\r\\nhi","recipients":[' + recipients + "]}").encode()


async def test_many_queued_requests_expanding_keep_other_clients_quick_and_memory_bounded(
    worker: Worker,
) -> None:
    body = _body(RECIPIENTS)
    async with aiohttp.ClientSession() as session:
        for _ in range(REQUESTS):
            async with session.post(f"http://127.0.0.1:{worker.http}/api/inject/v1",
                                    data=io.BytesIO(body), headers=JSON) as response:  # fmt: skip
                assert response.status == 200, await response.text()
    waits: list[float] = []
    async with asyncio.timeout(240):
        while worker.generated() < REQUESTS * RECIPIENTS:
            waits.append(await ehlo_seconds(worker.smtp))
            await asyncio.sleep(0.05)
    _, peak = worker.rss_mib()
    # Before: median 43 ms, peak 441 MiB (sixteen requests expanding at once).
    # After: median 9 ms, peak 282 MiB (two: at most 4 MiB of requests at once).
    assert statistics.median(waits) < 0.025, sorted(waits)[len(waits) // 2 :]
    # Checked on worker threads, the requests took the GIL from the loop: the longest
    # wait was 202-226 ms. Checked and built on the loop a slice at a time: 89-97 ms
    # (what is left is the collector's, over the requests' objects).
    assert max(waits) < 0.18, sorted(waits)[-10:]
    assert peak < 360, peak
