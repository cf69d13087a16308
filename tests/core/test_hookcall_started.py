"""KumoMTA's ``lua_event_started``: the hook caller counts a call that runs an
implementation as it starts (``HookTiming.started``), before it completes (``calls``,
``latency``); a hook nobody implements is never counted as started."""

from __future__ import annotations

import asyncio

from kumocore import hookimpl
from kumocore.policy.hookcall import HookCaller
from kumocore.policy.plugins import make_plugin_manager


class SlowEhlo:
    def __init__(self) -> None:
        self.release = asyncio.Event()

    @hookimpl
    async def kumo_smtp_server_ehlo(self, domain: str) -> None:
        await self.release.wait()


async def test_a_call_counts_as_started_while_it_runs_and_as_completed_after() -> None:
    plugin = SlowEhlo()
    caller = HookCaller(make_plugin_manager(load_entrypoints=False, plugins=[("p", plugin)]))
    running = asyncio.ensure_future(caller.call_all("kumo_smtp_server_ehlo", domain="x"))
    await asyncio.sleep(0)
    timing = caller.timings["kumo_smtp_server_ehlo"]
    assert (timing.started, timing.calls, timing.latency.count) == (1, 0, 0)
    plugin.release.set()
    await running
    assert (timing.started, timing.calls, timing.latency.count) == (1, 1, 1)


async def test_a_hook_without_implementations_is_never_counted_as_started() -> None:
    caller = HookCaller(make_plugin_manager(load_entrypoints=False, plugins=[]))
    assert await caller.call_first("kumo_get_egress_pool", pool_name="p") is None
    timing = caller.timings["kumo_get_egress_pool"]
    assert (timing.started, timing.calls, timing.latency.count) == (0, 1, 0)
