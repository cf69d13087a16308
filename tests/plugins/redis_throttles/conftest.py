"""Fixtures: a real redis-server per test, and stores connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kumocore_redis_throttles import RedisOptions, RedisThrottleStore

from bench.common.redis_server import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisThrottleStore]:
    # A short probe interval keeps the outage tests quick; production default is 1 s.
    options = RedisOptions.from_table({"node": redis_server.url, "response_timeout": 0.5})
    connected = await RedisThrottleStore.connect(options, probe_interval=0.05)
    yield connected
    await connected.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Any]:
    """A plain client to look at what the store wrote into Redis."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # The retry lets this client reconnect by itself after a test restarts the server.
    client = Redis.from_url(redis_server.url, decode_responses=True, retry=Retry(NoBackoff(), 2))
    yield client
    await client.aclose()
