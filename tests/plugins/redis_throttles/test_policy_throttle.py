"""kumo.make_throttle counts in the shared (Redis) store once the server uses one, and in
the process for ``local:`` specs."""

from __future__ import annotations

from typing import Any

from kumocore_redis_throttles import RedisThrottleStore

from kumocore.node.runtime import Runtime
from tests.support.wiring import wire


async def test_make_throttle_uses_redis_and_local_prefix_stays_in_process(
    store: RedisThrottleStore, raw: Any
) -> None:
    runtime = Runtime(load_entrypoints=False)
    wire(runtime, throttles=store)  # the server's shared throttle store
    shared = runtime.kumo.make_throttle("policy-shared", "1/hour")
    assert (await shared.throttle())["throttled"] is False
    assert (await shared.throttle())["throttled"] is True
    assert [key async for key in raw.scan_iter("*policy-shared*")] != []
    local = runtime.kumo.make_throttle("policy-local", "local:1/hour")
    assert (await local.throttle())["throttled"] is False
    assert [key async for key in raw.scan_iter("*policy-local*")] == []
