"""The hook caller: order, first-result semantics, async implementations, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kumocore import HookError, Rejection, hookimpl
from kumocore.policy.hookcall import HookCaller
from kumocore.policy.plugins import PluginLoadError, make_plugin_manager


class Recorder:
    def __init__(self, name: str, calls: list[str], answer: Any = None) -> None:
        self.name = name
        self.calls = calls
        self.answer = answer

    @hookimpl
    def kumo_smtp_server_ehlo(self, domain: str) -> None:
        self.calls.append(self.name)

    @hookimpl
    def kumo_get_egress_pool(self, pool_name: str) -> Any:
        self.calls.append(self.name)
        return self.answer


class BuiltinDefault:
    @hookimpl(trylast=True)
    def kumo_get_egress_pool(self, pool_name: str) -> str:
        return "builtin-default"

    @hookimpl(trylast=True)
    def kumo_smtp_server_ehlo(self) -> None:
        CALLS.append("builtin")


CALLS: list[str] = []


def caller_for(*plugins: tuple[str, object]) -> HookCaller:
    return HookCaller(make_plugin_manager(load_entrypoints=False, plugins=plugins))


async def test_policy_runs_before_third_party_and_builtins_run_last() -> None:
    CALLS.clear()
    caller = caller_for(
        ("builtin", BuiltinDefault()),
        ("thirdparty", Recorder("thirdparty", CALLS)),
        ("policy", Recorder("policy", CALLS)),
    )
    await caller.call_all("kumo_smtp_server_ehlo", domain="x", conn_meta={})
    assert CALLS == ["policy", "thirdparty", "builtin"]


async def test_lookup_returns_first_non_none_and_stops() -> None:
    calls: list[str] = []
    caller = caller_for(
        ("builtin", BuiltinDefault()),
        ("late", Recorder("late", calls, answer="late-answer")),
        ("first", Recorder("first", calls, answer=None)),
        ("policy", Recorder("policy", calls, answer=None)),
    )
    result = await caller.call_first("kumo_get_egress_pool", pool_name="p")
    assert result == "late-answer"
    assert calls == ["policy", "first", "late"]


async def test_lookup_falls_back_to_builtin_default_when_nobody_answers() -> None:
    calls: list[str] = []
    caller = caller_for(("builtin", BuiltinDefault()), ("policy", Recorder("p", calls)))
    assert await caller.call_first("kumo_get_egress_pool", pool_name="p") == "builtin-default"


class AsyncPolicy:
    @hookimpl
    async def kumo_get_egress_pool(self, pool_name: str) -> str:
        await asyncio.sleep(0.01)
        return f"async:{pool_name}"


async def test_async_implementations_are_awaited() -> None:
    caller = caller_for(("policy", AsyncPolicy()))
    assert await caller.call_first("kumo_get_egress_pool", pool_name="p1") == "async:p1"


class Broken:
    @hookimpl
    def kumo_get_egress_pool(self, pool_name: str) -> str:
        raise KeyError("boom")


async def test_failures_are_attributed_to_their_plugin_and_hook() -> None:
    caller = caller_for(("broken-plugin", Broken()))
    with pytest.raises(HookError) as info:
        await caller.call_first("kumo_get_egress_pool", pool_name="p")
    assert info.value.plugin == "broken-plugin"
    assert info.value.hook == "kumo_get_egress_pool"
    assert "boom" in str(info.value)


class Rejecting:
    @hookimpl
    def kumo_smtp_server_ehlo(self, domain: str) -> None:
        raise Rejection(550, "5.7.1 go away")


async def test_rejection_propagates_unwrapped() -> None:
    caller = caller_for(("policy", Rejecting()))
    with pytest.raises(Rejection) as info:
        await caller.call_all("kumo_smtp_server_ehlo", domain="x", conn_meta={})
    assert info.value.code == 550


class Slow:
    @hookimpl
    async def kumo_get_egress_pool(self, pool_name: str) -> str:
        await asyncio.sleep(5)
        return "late"


async def test_slow_async_hook_times_out_with_plugin_named() -> None:
    caller = HookCaller(
        make_plugin_manager(load_entrypoints=False, plugins=[("slowpoke", Slow())]), timeout=0.05
    )
    with pytest.raises(HookError, match="slowpoke"):
        await caller.call_first("kumo_get_egress_pool", pool_name="p")


class Wrapper:
    @hookimpl(wrapper=True)
    def kumo_get_egress_pool(self, pool_name: str) -> Any:
        return (yield)


def test_wrapper_implementations_are_refused_with_a_clear_error() -> None:
    with pytest.raises(PluginLoadError, match="wrapper"):
        make_plugin_manager(load_entrypoints=False, plugins=[("wrapping", Wrapper())])


class AsyncProvider:
    @hookimpl
    async def kumo_register_spool_kinds(self) -> dict[str, Any]:
        return {}


def test_async_provider_hooks_are_reported_as_plugin_bugs() -> None:
    caller = caller_for(("asyncprovider", AsyncProvider()))
    with pytest.raises(HookError, match="synchronous"):
        caller.call_all_sync("kumo_register_spool_kinds")


def test_hook_timings_are_recorded_per_hook() -> None:
    caller = caller_for(("policy", AsyncPolicy()))
    asyncio.run(caller.call_first("kumo_get_egress_pool", pool_name="p"))
    assert caller.timings["kumo_get_egress_pool"].calls == 1


async def test_a_plugin_registered_or_unregistered_later_is_seen_by_the_next_call() -> None:
    calls: list[str] = []
    caller = caller_for(("first", Recorder("first", calls)))
    await caller.call_all("kumo_smtp_server_ehlo", domain="x")  # the call plan is built
    later = Recorder("later", calls)
    caller.pm.register(later, name="later")
    await caller.call_all("kumo_smtp_server_ehlo", domain="x")
    caller.pm.unregister(later)
    await caller.call_all("kumo_smtp_server_ehlo", domain="x")
    assert calls == ["first", "later", "first", "first"]  # pluggy: the newest runs first


async def test_a_synchronous_implementation_that_raises_is_attributed() -> None:
    class Broken:
        @hookimpl
        def kumo_get_egress_pool(self, pool_name: str) -> Any:
            raise ValueError("no such pool table")

    caller = caller_for(("broken", Broken()))
    for _ in range(2):  # the second call uses the cached plan
        with pytest.raises(HookError) as info:
            await caller.call_first("kumo_get_egress_pool", pool_name="p")
        assert info.value.plugin == "broken" and "no such pool table" in str(info.value)
