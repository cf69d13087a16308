"""kumo.memoize: KumoMTA's cache semantics, from Lua and from Python."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from kumocore_lua_policy import LuaPolicyPlugin

from kumocore import ConfigError, PolicyError, Rejection

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


# --------------------------------------------------------------------------- single flight
# Callers of a memoized function that arrive while another caller computes the same key
# wait for that result instead of computing it again (KumoMTA's thundering herd protection).

def _probes(policy: Any, key: str, count: int) -> list[asyncio.Task[Any]]:
    """``count`` concurrent calls of the policy's ``make.probe`` handler with ``key``."""
    return [asyncio.create_task(policy.call_custom_event("make.probe", key))
            for _ in range(count)]


async def _settled(tasks: list[asyncio.Task[Any]]) -> list[Any]:
    """The tasks' results or exceptions; fails the test instead of hanging."""
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)


async def _released(recorder: Recorder, gate: str, tasks: list[asyncio.Task[Any]]) -> list[Any]:
    """Let every task reach the memoized call, then open ``gate``; their results."""
    await asyncio.sleep(0.02)
    recorder.gate(gate).set()
    return await _settled(tasks)


async def test_concurrent_callers_of_one_key_share_one_computation(tmp_path: Path) -> None:
    recorder = Recorder()
    _, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        local cached = kumo.memoize(function(k)
          kumo.test.mark('computing ' .. k)
          kumo.test.wait(k)  -- suspends the handler until the test opens gate k
          return { key = k, list = { 1, 2 } }
        end, { name = 'flight', ttl = '1h', capacity = 10 })
        kumo.on('make.probe', function(k) return cached(k) end)
    """, recorder=recorder)
    callers = _probes(policy, "a", 20)
    other = _probes(policy, "b", 1)
    # 'b' is computed while 'a' still is: different keys do not wait for each other.
    assert sorted(await recorder.wait_for_marks(2)) == ["computing a", "computing b"]
    recorder.gate("b").set()
    assert await _settled(other) == [{"key": "b", "list": [1, 2]}]
    await asyncio.sleep(0.05)
    assert len(recorder.marks) == 2  # the other 19 callers of 'a' wait, they do not compute
    recorder.gate("a").set()
    assert await _settled(callers) == [{"key": "a", "list": [1, 2]}] * 20
    assert await policy.call_custom_event("make.probe", "a") == {"key": "a", "list": [1, 2]}
    assert recorder.marks == ["computing a", "computing b"]


async def test_single_flight_entries_still_expire(tmp_path: Path) -> None:
    _, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        local n = 0
        local cached = kumo.memoize(function(k)
          n = n + 1
          local mine = n
          kumo.test.echo(k)  -- yields: the other callers arrive meanwhile
          return mine
        end, { name = 'expiring', ttl = '200ms', capacity = 10 })
        kumo.on('make.probe', function(k) return cached(k) end)
    """)
    assert await _settled(_probes(policy, "k", 10)) == [1] * 10
    await asyncio.sleep(0.3)
    assert await _settled(_probes(policy, "k", 10)) == [2] * 10


FLAKY = """\
    local kumo = require 'kumo'
    local cached = kumo.memoize(function(k)
      kumo.test.mark('computing ' .. k)
      kumo.test.wait(k)
      local how = kumo.test.value()
      if how == 'error' then
        error('lookup failed for ' .. k)
      elseif how == 'reject' then
        kumo.test.reject(451, 'try later')
      end
      return how
    end, { name = 'flaky', ttl = '1h', capacity = 10 })
    kumo.on('make.probe', function(k) return cached(k) end)
    kumo.on('make.guarded', function(k)
      local ok, err = pcall(cached, k)
      return tostring(err)
    end)
"""


def _memo_cache(runtime: Any, name: str) -> Any:
    """The plugin's named memoize cache (shared by every policy state of the runtime)."""
    return runtime.pm.get_plugin("lua_policy").stdlib.memo.caches[name]


async def test_a_failed_computation_fails_its_waiters_and_is_remembered_for_a_while(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    runtime, policy = await load(tmp_path, FLAKY, recorder=recorder)
    cache = _memo_cache(runtime, "flaky")
    assert cache.failure_ttl == 60  # KumoMTA's lruttl keeps a failed entry 60 seconds
    recorder.value = "error"
    computing, *waiters = await _released(recorder, "a", _probes(policy, "a", 5))
    assert recorder.marks == ["computing a"]
    # The computing caller's error is untouched (still naming the failing line)...
    assert isinstance(computing, PolicyError)
    assert computing.where == f"{tmp_path / 'policy.lua'}:7"
    assert str(computing).endswith("lookup failed for a")
    # ...and every waiter gets it too, naming the cache.
    for error in waiters:
        assert isinstance(error, PolicyError)
        assert "kumo.memoize 'flaky'" in str(error) and "lookup failed for a" in str(error)
    # The failure is remembered: a later caller gets the same error without computing,
    # even though the function would now succeed...
    recorder.value = "fine"
    recorder.gate("a").set()
    later = await _settled(_probes(policy, "a", 2))
    for error in later:
        assert isinstance(error, PolicyError)
        assert "kumo.memoize 'flaky'" in str(error) and "lookup failed for a" in str(error)
    assert recorder.marks == ["computing a"]
    # A rejection stays a rejection for every caller.
    recorder.value = "reject"
    rejections = await _released(recorder, "b", _probes(policy, "b", 3))
    assert [(type(r), getattr(r, "code", None)) for r in rejections] == [(Rejection, 451)] * 3
    remembered = await _settled(_probes(policy, "b", 1))
    assert [(type(r), getattr(r, "code", None)) for r in remembered] == [(Rejection, 451)]
    # The same when the policy catches the error itself (the guarded handler's pcall).
    recorder.value = "error"
    caught = await _released(recorder, "c", [
        asyncio.create_task(policy.call_custom_event("make.guarded", "c")) for _ in range(3)])
    assert caught[0].endswith("policy.lua:7: lookup failed for c")
    assert all(text == f"kumo.memoize 'flaky': {caught[0]}" for text in caught[1:])
    assert recorder.marks == ["computing a", "computing b", "computing c"]


async def test_a_remembered_failure_expires_after_failure_ttl(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, policy = await load(tmp_path, FLAKY, recorder=recorder)
    _memo_cache(runtime, "flaky").failure_ttl = 0.05  # rather than waiting 60 seconds
    for gate in ("z", "y"):
        recorder.gate(gate).set()
    recorder.value = "error"
    [first] = await _settled(_probes(policy, "z", 1))
    assert isinstance(first, PolicyError) and str(first).endswith("lookup failed for z")
    recorder.value = "fine"
    [again] = await _settled(_probes(policy, "z", 1))
    assert isinstance(again, PolicyError) and "kumo.memoize 'flaky'" in str(again)
    assert await policy.call_custom_event("make.probe", "y") == "fine"  # other keys compute
    await asyncio.sleep(0.1)
    assert await policy.call_custom_event("make.probe", "z") == "fine"
    assert recorder.marks == ["computing z", "computing y", "computing z"]


SLOW = """\
    local kumo = require 'kumo'
    local n = 0
    local cached = kumo.memoize(function(k)
      n = n + 1
      local mine = n
      kumo.test.mark(k .. ' ' .. mine)
      if mine == 1 then kumo.test.wait('first') end
      kumo.test.echo(k)  -- every computation yields: a second one would overlap
      return k .. ' by ' .. mine
    end, { name = 'slow', ttl = '1h', capacity = 10, populate_timeout = '100ms', %s })
    kumo.on('make.probe', function(k) return cached(k) end)
"""


async def test_waiters_give_up_after_populate_timeout(tmp_path: Path) -> None:
    recorder = Recorder()
    _, policy = await load(tmp_path, SLOW % "", recorder=recorder)
    computing, *waiters = _probes(policy, "k", 4)
    await recorder.wait_for_marks(1)
    errors = await _settled(waiters)
    for error in errors:
        assert isinstance(error, PolicyError)
        assert "kumo.memoize 'slow'" in str(error) and "populate_timeout (0.1s)" in str(error)
    assert recorder.marks == ["k 1"]
    # The computing call itself is not interrupted (nor is it in KumoMTA).
    assert not computing.done()
    recorder.gate("first").set()
    assert await _settled([computing]) == ["k by 1"]
    assert await policy.call_custom_event("make.probe", "k") == "k by 1"
    assert recorder.marks == ["k 1"]


async def test_retry_on_populate_timeout_computes_in_place_of_a_stuck_caller(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    _, policy = await load(tmp_path, SLOW % "retry_on_populate_timeout = true",
                           recorder=recorder)
    stuck, *waiters = _probes(policy, "k", 3)
    await recorder.wait_for_marks(1)
    # After populate_timeout one waiter computes the value; the other waits for that one.
    assert await _settled(waiters) == ["k by 2", "k by 2"]
    assert recorder.marks == ["k 1", "k 2"]
    recorder.gate("first").set()
    assert await _settled([stuck]) == ["k by 1"]


async def test_a_stopped_handler_hands_the_computation_to_a_waiter(tmp_path: Path) -> None:
    recorder = Recorder()
    _, policy = await load(tmp_path, SLOW % "", recorder=recorder)
    stopped, *waiters = _probes(policy, "k", 3)
    await recorder.wait_for_marks(1)
    await asyncio.sleep(0.01)
    stopped.cancel()  # e.g. the connection went away: its coroutine is closed
    assert await _settled(waiters) == ["k by 2", "k by 2"]
    assert recorder.marks == ["k 1", "k 2"]


@pytest.mark.parametrize("stale_ok", [True, False])
async def test_allow_stale_reads_answers_a_timed_out_waiter(tmp_path: Path, stale_ok: bool) -> None:
    recorder = Recorder()
    _, policy = await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local n = 0
        local cached = kumo.memoize(function()
          n = n + 1
          local mine = n
          if mine > 1 then kumo.test.wait('refresh') end
          return 'v' .. mine
        end, {{ name = 'stale', ttl = '100ms', capacity = 1, populate_timeout = '100ms',
               allow_stale_reads = {str(stale_ok).lower()} }})
        kumo.on('make.probe', function() return cached() end)
    """, recorder=recorder)
    assert await policy.call_custom_event("make.probe") == "v1"
    await asyncio.sleep(0.15)  # expired
    refreshing, waiting = _probes(policy, "", 2)
    [answer] = await _settled([waiting])
    if stale_ok:
        assert answer == "v1"  # the expired value, rather than an error
    else:
        assert isinstance(answer, PolicyError) and "populate_timeout" in str(answer)
    recorder.gate("refresh").set()
    assert await _settled([refreshing]) == ["v2"]
    assert await policy.call_custom_event("make.probe") == "v2"


async def test_python_memoize_is_single_flight_too() -> None:
    kumo = make_runtime().kumo
    calls: list[str] = []
    gate = asyncio.Event()

    async def fetch(key: str) -> dict[str, str]:
        calls.append(key)
        await gate.wait()
        if key == "bad":
            raise LookupError(f"no such {key}")
        return {"key": key}

    cached = kumo.memoize(fetch, {"name": "pyflight", "ttl": 60, "capacity": 4})
    good = [asyncio.create_task(cached("k")) for _ in range(10)]
    bad = [asyncio.create_task(cached("bad")) for _ in range(3)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*good), 5)
    assert results == [{"key": "k"}] * 10
    assert len({id(result) for result in results}) == 10  # each caller has its own copy
    errors = await asyncio.wait_for(asyncio.gather(*bad, return_exceptions=True), 5)
    assert all(isinstance(error, LookupError) for error in errors)
    assert calls == ["k", "bad"]
    with pytest.raises(LookupError):  # the failure is remembered: not computed again
        await cached("bad")
    assert calls == ["k", "bad"]


async def test_python_memoize_remembers_a_failure_for_failure_ttl() -> None:
    runtime = make_runtime()
    kumo = runtime.kumo
    calls: list[str] = []

    def lookup(key: str) -> str:
        calls.append(key)
        if calls.count(key) == 1:  # each key fails the first time
            raise LookupError(f"no {key} yet")
        return key.upper()

    cached = kumo.memoize(lookup, {"name": "pyfail", "ttl": "1h", "capacity": 4})
    for _ in range(3):
        with pytest.raises(LookupError, match="no k yet"):
            cached("k")
    assert calls == ["k"]
    _memo_cache(runtime, "pyfail").failure_ttl = 0.05  # rather than waiting 60 seconds
    with pytest.raises(LookupError, match="no j yet"):
        cached("j")
    with pytest.raises(LookupError, match="no j yet"):
        cached("j")
    time.sleep(0.1)
    assert cached("j") == "J"
    assert calls == ["k", "j", "j"]


async def test_a_remembered_failure_expires_with_the_config_epoch(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        local cached = kumo.memoize(function(k)
          kumo.test.mark('computing ' .. k)
          if kumo.test.value() == 'error' then error('down') end
          return 'up'
        end, { name = 'epoch_fail', ttl = '1h', capacity = 10, invalidate_with_epoch = true })
        kumo.on('make.probe', function(k) return cached(k) end)
    """, recorder=recorder)
    recorder.value = "error"
    with pytest.raises(PolicyError, match="down"):
        await policy.call_custom_event("make.probe", "k")
    recorder.value = "fine"
    with pytest.raises(PolicyError, match=r"kumo\.memoize 'epoch_fail'.*down"):
        await policy.call_custom_event("make.probe", "k")
    runtime.kumo.bump_config_epoch()
    assert await policy.call_custom_event("make.probe", "k") == "up"
    assert recorder.marks == ["computing k", "computing k"]
