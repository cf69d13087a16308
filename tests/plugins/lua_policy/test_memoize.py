"""kumo.memoize: KumoMTA's cache semantics, from Lua and from Python."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kumocore_lua_policy import LuaPolicyPlugin

from kumocore import ConfigError, PolicyError

from .support import Recorder, load, make_runtime


async def test_lua_memoize_caches_by_argument_value_and_copies_tables(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local calls = 0
        local cached = kumo.memoize(function(key, opts)
          calls = calls + 1
          return { key = key, n = calls, list = { 1, 2 } }
        end, { name = 'lookup', ttl = '5 minutes', capacity = 10 })
        local a = cached('x', { deep = { 1 } })
        a.list[1] = 'mutated by the caller'
        local b = cached('x', { deep = { 1 } })   -- equal by value: a hit
        local c = cached('y', { deep = { 1 } })
        kumo.test.mark(calls .. ' ' .. b.n .. ' ' .. b.list[1] .. ' ' .. c.n)
        -- a result that needs I/O is fine: the function runs as policy code
        local slow = kumo.memoize(function(v) return kumo.test.echo(v) end,
                                  { name = 'io', ttl = 60, capacity = 1 })
        kumo.test.mark(slow('through io'))
        -- every result is cached, nils included
        local multi = kumo.memoize(function(x) calls = calls + 1; return x, nil, x * 2 end,
                                   { name = 'multi', ttl = 60, capacity = 2 })
        local function count(...) return select('#', ...) .. ':' .. tostring((select(3, ...))) end
        kumo.test.mark(count(multi(4)) .. ' ' .. count(multi(4)) .. ' ' .. calls)
    """, recorder=recorder)
    assert recorder.marks == ["2 1 1 2", "through io", "3:8 3:8 3"]


async def test_lua_memoize_evicts_least_recently_used_and_expires(tmp_path: Path) -> None:
    recorder = Recorder()
    _, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        local calls = {}
        local cached = kumo.memoize(function(k)
          calls[#calls + 1] = k
          return k
        end, { name = 'lru', ttl = '200ms', capacity = 2 })
        kumo.on('make.probe', function(keys)
          calls = {}
          for _, k in ipairs(keys) do cached(k) end
          return calls
        end)
    """, recorder=recorder)
    # a, b cached; a used again (hit); c evicts b (the least recently used); b misses.
    assert await policy.call_custom_event("make.probe", ["a", "b", "a", "c", "b", "a"]) == [
        "a", "b", "c", "b", "a"]
    await asyncio.sleep(0.3)  # ttl 200ms: everything expired
    assert await policy.call_custom_event("make.probe", ["c"]) == ["c"]


async def test_memoize_invalidate_with_epoch(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        local n = 0
        local with_epoch = kumo.memoize(function() n = n + 1; return n end,
          { name = 'e1', ttl = '1h', capacity = 5, invalidate_with_epoch = true })
        local without = kumo.memoize(function() n = n + 1; return n end,
          { name = 'e2', ttl = '1h', capacity = 5 })
        kumo.on('make.probe', function() return { with_epoch(), without() } end)
    """, recorder=recorder)
    assert await policy.call_custom_event("make.probe") == [1, 2]
    assert await policy.call_custom_event("make.probe") == [1, 2]
    runtime.kumo.bump_config_epoch()
    first, second = await policy.call_custom_event("make.probe")
    assert first == 3 and second == 2


@pytest.mark.parametrize(("params", "message"), [
    ("{ ttl = '1m', capacity = 1 }", "'name' parameter is required"),
    ("{ name = 'x', ttl = 'soon', capacity = 1 }", "kumo.memoize 'x'"),
    ("{ name = 'x', ttl = 5, capacity = 0 }", "'capacity' must be a positive integer"),
    ("{ name = 'x', ttl = 5, capacity = 1, colour = 'red' }", "unknown parameter(s) colour"),
])
async def test_bad_memoize_parameters_fail_at_load(
    tmp_path: Path, params: str, message: str
) -> None:
    with pytest.raises(PolicyError) as info:
        await load(tmp_path, f"""\
            local kumo = require 'kumo'
            local f = kumo.memoize(function() end, {params})
        """)
    assert message in str(info.value)
    assert info.value.where == f"{tmp_path / 'policy.lua'}:2"


async def test_python_memoize_sync_and_async() -> None:
    kumo = make_runtime().kumo
    calls: list[object] = []

    def compute(key: str) -> dict[str, object]:
        calls.append(key)
        return {"key": key, "items": [1]}

    cached = kumo.memoize(compute, {"name": "py", "ttl": "1 minute", "capacity": 2})
    first = cached("a")
    first["items"].append(2)  # the caller's copy, not the cache's
    assert cached("a") == {"key": "a", "items": [1]}
    assert calls == ["a"]

    async def fetch(key: str) -> str:
        await asyncio.sleep(0)
        calls.append(("async", key))
        return key.upper()

    cached_async = kumo.memoize(fetch, {"name": "pya", "ttl": 60, "capacity": 2})
    assert await cached_async("b") == "B" and await cached_async("b") == "B"
    assert calls == ["a", ("async", "b")]
    with pytest.raises(ConfigError, match="'ttl' parameter is required"):
        kumo.memoize(compute, {"name": "x", "capacity": 1})

    attempts: list[int] = []

    async def slow(key: str) -> str:
        attempts.append(1)
        await asyncio.sleep(5)
        return key

    timed = kumo.memoize(slow, {"name": "slow", "ttl": 60, "capacity": 1,
                                "populate_timeout": "50ms", "retry_on_populate_timeout": True})
    with pytest.raises(ConfigError, match=r"took longer than populate_timeout \(0\.05s\)"):
        await timed("x")
    assert len(attempts) == 3


def test_caches_are_shared_by_name_across_policy_states() -> None:
    plugin = LuaPolicyPlugin()
    memo = plugin.stdlib.memo
    params = {"name": "shared", "ttl": 60, "capacity": 3}
    memo.cache(params).put('["k"]', "v", memo.epoch.value)
    assert memo.cache(dict(params)).get('["k"]') == (True, "v")  # same name, same entries
    changed = memo.cache({**params, "capacity": 4})  # re-parameterised: a fresh cache
    assert changed.get('["k"]') == (False, None)
