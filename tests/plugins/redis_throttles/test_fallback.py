"""Redis going away mid-run: answers continue from the local store, then Redis again."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import MutableMapping
from typing import Any

from kumocore_redis_throttles import RedisOptions, RedisThrottleStore
from structlog.testing import capture_logs

from bench.common.redis_server import RedisServer
from kumocore.throttle import ThrottleSpec, rate_key


def events(logs: list[MutableMapping[str, Any]], level: str) -> list[str]:
    return [entry["event"] for entry in logs if entry["log_level"] == level]


async def test_killed_redis_falls_back_to_local_limits_logs_once_and_comes_back(
    store: RedisThrottleStore, redis_server: RedisServer, raw: Any
) -> None:
    spec = ThrottleSpec.parse("5/m")
    with capture_logs() as logs:
        assert not (await store.throttle(rate_key("before", spec), spec)).throttled
        assert await raw.exists(rate_key("before", spec)) == 1

        redis_server.kill()
        answers = [await store.throttle("during", spec) for _ in range(20)]
        # Still answered, and still limited: per node now, by the local store.
        assert sum(not r.throttled for r in answers) == 5
        assert store.degraded
        assert store.local.throttle_now("during", spec, 0).remaining == 0
        warnings = events(logs, "warning")
        assert len(warnings) == 1 and "unreachable" in warnings[0]

        redis_server.start()  # same port, empty
        await asyncio.sleep(store.probe_interval * 2)
        assert not (await store.throttle(rate_key("after", spec), spec)).throttled
        assert not store.degraded
        assert await raw.exists(rate_key("after", spec)) == 1
        assert [e for e in events(logs, "info") if "reachable again" in e]
        assert len(events(logs, "warning")) == 1


async def test_leases_during_an_outage_come_from_and_return_to_the_local_store(
    store: RedisThrottleStore, redis_server: RedisServer, raw: Any
) -> None:
    shared = await store.acquire_lease("c", 2, 30)
    assert shared is not None and shared.origin == "redis"
    redis_server.kill()
    # Renewing or releasing a Redis lease while Redis is away must not fail the caller.
    await store.renew_lease(shared, 30)
    await store.release_lease(shared)
    held = [await store.acquire_lease("c", 2, 30) for _ in range(3)]
    assert [lease.origin if lease else None for lease in held] == ["local", "local", None]
    redis_server.start()
    await asyncio.sleep(store.probe_interval * 2)
    for lease in held:
        if lease is not None:
            await store.renew_lease(lease, 30)
            await store.release_lease(lease)
    assert store.local.leases_held("c") == 0
    again = await store.acquire_lease("c", 2, 30)
    assert again is not None and again.origin == "redis"
    assert await raw.zcard("c") == 1


async def test_a_hung_redis_is_detected_by_the_response_timeout(
    redis_server: RedisServer,
) -> None:
    options = RedisOptions.from_table({"node": redis_server.url, "response_timeout": "200ms"})
    store = await RedisThrottleStore.connect(options, probe_interval=0.05)
    spec = ThrottleSpec.parse("3/m")
    assert redis_server.process is not None
    try:
        await store.throttle("k", spec)
        redis_server.process.send_signal(signal.SIGSTOP)  # accepts TCP, answers nothing
        result = await asyncio.wait_for(store.throttle("k", spec), timeout=5)
        assert not result.throttled and store.degraded
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
        await store.close()
