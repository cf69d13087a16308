"""Configuration epochs: a changed data or policy file takes effect without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kumocore.node.runtime import Runtime

from .support import Recorder, make_runtime, write


async def eventually(probe: Callable[[], Awaitable[Any]], expected: Any,
                     timeout: float = 15.0) -> Any:
    """Poll ``probe`` until it returns ``expected`` (the monitor polls in the background)."""
    value = None
    async with asyncio.timeout(timeout):
        while (value := await probe()) != expected:
            await asyncio.sleep(0.05)
    return value


async def start(
    tmp_path: Path, source: str, recorder: Recorder | None = None
) -> tuple[Runtime, Any]:
    runtime = make_runtime(recorder or Recorder())
    runtime.pm.get_plugin("lua_policy").stdlib.monitor.interval = 0.1
    await runtime.load(write(tmp_path, "policy.lua", source))  # load + init: monitor starts
    return runtime, runtime.pm.get_plugin("policy")


POLICY = """\
    local kumo = require 'kumo'
    local DATA = '{dir}/tenants.toml'
    local load_tenants = kumo.memoize(kumo.toml_load, {{
      name = 'tenants', ttl = '1 hour', capacity = 4, invalidate_with_epoch = true }})
    kumo.on('init', function()
      kumo.set_config_monitor_globs {{ '{dir}/*.toml' }}
    end)
    kumo.on('make.pool_for', function(tenant)
      return '{label}' .. load_tenants(DATA)[tenant].pool
    end)
"""


async def test_changed_data_file_takes_effect_without_restart(tmp_path: Path) -> None:
    data = tmp_path / "tenants.toml"
    data.write_text('[acme]\npool = "pool-a"\n')
    runtime, policy = await start(tmp_path, POLICY.format(dir=tmp_path, label=""))
    try:
        assert await policy.call_custom_event("make.pool_for", "acme") == "pool-a"
        data.write_text('[acme]\npool = "pool-b"\n')
        await eventually(lambda: policy.call_custom_event("make.pool_for", "acme"), "pool-b")
        assert runtime.kumo.eval_config_monitor_globs() == [str(data)]
    finally:
        await runtime.hooks.shutdown()


async def test_changed_policy_file_is_reloaded_in_a_fresh_lua_state(tmp_path: Path) -> None:
    (tmp_path / "tenants.toml").write_text('[acme]\npool = "pool-a"\n')
    runtime, policy = await start(tmp_path, POLICY.format(dir=tmp_path, label="v1:"))
    try:
        assert await policy.call_custom_event("make.pool_for", "acme") == "v1:pool-a"
        first_engine = policy.engine
        write(tmp_path, "policy.lua", POLICY.format(dir=tmp_path, label="v2:"))
        await eventually(lambda: policy.call_custom_event("make.pool_for", "acme"), "v2:pool-a")
        assert policy.reloads >= 1 and policy.engine is not first_engine
        # a reload that fails keeps the running handlers
        write(tmp_path, "policy.lua", "this is not lua")
        reloads = policy.reloads
        assert not await policy.reload()
        assert policy.reloads == reloads
        assert await policy.call_custom_event("make.pool_for", "acme") == "v2:pool-a"
    finally:
        await runtime.hooks.shutdown()


async def test_bump_config_epoch_from_lua_reloads_and_invalidates(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, policy = await start(tmp_path, """\
        local kumo = require 'kumo'
        local counter = kumo.memoize(function() kumo.test.mark('computed'); return 'v' end,
          { name = 'count', ttl = '1h', capacity = 1, invalidate_with_epoch = true })
        kumo.on('make.count', function() return counter() end)
        kumo.on('make.bump', function() kumo.bump_config_epoch() end)
    """, recorder)
    try:
        assert await policy.call_custom_event("make.count") == "v"
        assert await policy.call_custom_event("make.count") == "v"
        assert recorder.marks == ["computed"]
        await policy.call_custom_event("make.bump")
        await eventually(lambda: asyncio.sleep(0, policy.reloads), 1)
        # the reloaded policy shares the named cache, whose entry is now stale
        assert await policy.call_custom_event("make.count") == "v"
        assert await policy.call_custom_event("make.count") == "v"
        assert recorder.marks == ["computed", "computed"]
    finally:
        await runtime.hooks.shutdown()


def test_monitor_sees_same_size_rewrites_in_quick_succession(tmp_path: Path) -> None:
    from kumocore_lua_policy.stdlib import ConfigEpoch, ConfigMonitor

    data = tmp_path / "d.toml"
    data.write_text("a = 1\n")
    monitor = ConfigMonitor(ConfigEpoch())
    monitor.set_globs([f"{tmp_path}/*.toml"])
    assert not monitor.check()  # the baseline
    changes = 0
    for value in range(2, 12):
        data.write_text(f"a = {value % 10}\n")  # same size, within one mtime tick or two
        changes += monitor.check()
    assert changes == 10 and monitor.epoch.value == 10
    (tmp_path / "new.toml").write_text("")
    assert monitor.check()  # a file that appears is a change too


SHAPING_POLICY = """\
    local kumo = require 'kumo'
    local shaping = require 'policy-extras.shaping'
    kumo.on('get_egress_path_config', shaping:setup {{ '{dir}/shaping.toml' }})
"""


async def test_an_edited_shaping_file_reloads_the_policy_and_its_paths_wait_for_that(
    tmp_path: Path,
) -> None:
    shaping = tmp_path / "shaping.toml"
    shaping.write_text('["example.com"]\nmx_rollup = false\nconnection_limit = 3\n')
    runtime, policy = await start(tmp_path, SHAPING_POLICY.format(dir=tmp_path))

    async def limit() -> Any:
        config = await policy.call_event(
            "get_egress_path_config", "example.com", "unspecified", "example.com")
        assert config.refresh_strategy == "Epoch"  # kept until the next reload, as KumoMTA
        return config.connection_limit.limit

    try:
        assert await limit() == 3
        epoch = runtime.hooks.config_epoch()
        shaping.write_text('["example.com"]\nmx_rollup = false\nconnection_limit = 9\n')
        await eventually(limit, 9)  # no glob named the file: the helper had it watched
        assert runtime.hooks.config_epoch() > epoch
    finally:
        await runtime.hooks.shutdown()
