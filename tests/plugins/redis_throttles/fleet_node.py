"""One kumocore "node" for the fleet test, run as its own process against a shared Redis.

Protocol on stdin/stdout (one JSON object per line), so the test can line the nodes up:
  -> {"ready": true}                 once connected
  <- {"start": <unix time>, "window": <seconds>}
  -> {"allowed": n, "calls": n, "leases": n}   after the window and the lease grab
  <- anything                         release the leases and exit
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import structlog
from kumocore_redis_throttles import RedisOptions, RedisThrottleStore

from kumocore.throttle import ThrottleSpec, connection_limit_key, rate_key

SPEC = ThrottleSpec.parse("10/second")
LEASE_KEY = connection_limit_key("fleet-test->site@smtp_client")
LIMIT = 3


def send(message: dict[str, object]) -> None:
    print(json.dumps(message), flush=True)


async def receive() -> dict[str, float]:
    line = await asyncio.to_thread(sys.stdin.readline)
    return dict(json.loads(line)) if line.strip().startswith("{") else {}


async def main(url: str) -> None:
    store = await RedisThrottleStore.connect(RedisOptions.from_table({"node": url}))
    send({"ready": True})
    plan = await receive()
    await asyncio.sleep(max(0.0, plan["start"] - time.time()))
    end = plan["start"] + plan["window"]
    allowed = calls = 0
    while time.time() < end:
        result = await store.throttle(rate_key("fleet-test", SPEC), SPEC)
        calls += 1
        allowed += not result.throttled
        await asyncio.sleep(0.001)  # poll hard, but leave the CPU to the other node too
    # Try for more units of the connection limit than exist; hold what we get.
    leases = [await store.acquire_lease(LEASE_KEY, LIMIT, 30) for _ in range(LIMIT + 2)]
    held = [lease for lease in leases if lease is not None]
    send({"allowed": allowed, "calls": calls, "leases": len(held), "degraded": store.degraded})
    await receive()
    for lease in held:
        await store.release_lease(lease)
    await store.close()


if __name__ == "__main__":
    # stdout carries the protocol; diagnostics go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    asyncio.run(main(sys.argv[1]))
