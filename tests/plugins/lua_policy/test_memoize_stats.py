"""kumo.memoize's counters, as KumoMTA's memoize caches count them: per call
(``memoize_cache_*``: a call is a hit when it is answered with a value it did not compute)
and per lookup of the cache (``lruttl_*``: hits, misses, computations, errors, stale
answers, waiters, expiries, evictions). Each test uses a cache name of its own, and
compares the counts before and after (the counters are the process's)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kumocore import CacheStats, cache_stats

from .support import Recorder, load, make_runtime

_FIELDS = ("calls", "call_hits", "call_misses", "populated", "hits", "misses", "inserts",
           "expirations", "evictions", "errors", "stale", "waiting")


@contextmanager
def counted(name: str) -> Iterator[dict[str, int]]:
    """The counts of cache ``name`` that moved inside the block (filled in at its end)."""
    stats: CacheStats = cache_stats(name, memoize=True)
    before = {field: getattr(stats, field) for field in _FIELDS}
    moved: dict[str, int] = {}
    yield moved
    for field in _FIELDS:
        if getattr(stats, field) != before[field]:
            moved[field] = getattr(stats, field) - before[field]


def _policy(name: str, options: str = "") -> str:
    return f"""\
        local kumo = require 'kumo'
        local cached = kumo.memoize(function(k)
          kumo.test.mark('computing ' .. k)
          if k == 'bad' then error('no ' .. k) end
          if k == 'slow' then kumo.test.wait(k) end
          return 'v' .. k
        end, {{ name = '{name}', ttl = '1h', capacity = 2, {options} }})
        kumo.on('make.probe', function(k) return cached(k) end)
    """


def _memo_cache(runtime: Any, name: str) -> Any:
    """The plugin's memoize cache called ``name``."""
    return runtime.pm.get_plugin("lua_policy").stdlib.memo.caches[name]


async def _call(policy: Any, key: str) -> Any:
    try:
        return await policy.call_custom_event("make.probe", key)
    except Exception as exc:
        return f"error: {exc}"


async def test_each_call_is_a_lookup_then_a_hit_or_a_miss(tmp_path: Path) -> None:
    _, policy = await load(tmp_path, _policy("stats.calls"), recorder=Recorder())
    with counted("stats.calls") as moved:
        assert [await _call(policy, k) for k in "aaba"] == ["va", "va", "vb", "va"]
    assert moved == {"calls": 4, "call_hits": 2, "call_misses": 2, "populated": 2,
                     "hits": 2, "misses": 2}
    assert cache_stats("stats.calls").size() == 2


async def test_a_full_cache_evicts_and_an_expired_entry_is_removed(tmp_path: Path) -> None:
    runtime, policy = await load(tmp_path, _policy("stats.lru"), recorder=Recorder())
    with counted("stats.lru") as moved:
        for key in "abc":  # capacity 2: "a" goes
            await _call(policy, key)
    assert moved["evictions"] == 1
    cache = _memo_cache(runtime, "stats.lru")
    entry = cache._entries['["c"]']
    cache._entries['["c"]'] = (0.0, *entry[1:])  # as if its ttl had run out
    with counted("stats.lru") as moved:
        assert await _call(policy, "c") == "vc"
    assert moved == {"calls": 1, "call_misses": 1, "populated": 1, "misses": 1,
                     "expirations": 1}


async def test_a_failed_computation_is_an_error_and_neither_hit_nor_miss(
    tmp_path: Path,
) -> None:
    _, policy = await load(tmp_path, _policy("stats.fail"), recorder=Recorder())
    with counted("stats.fail") as moved:
        assert (await _call(policy, "bad")).startswith("error")
    assert moved == {"calls": 1, "populated": 1, "misses": 1, "errors": 1}
    with counted("stats.fail") as moved:  # the remembered failure: a miss, not computed
        assert (await _call(policy, "bad")).startswith("error")
    assert moved == {"calls": 1, "misses": 1}


async def test_waiters_for_another_callers_computation_are_a_gauge_then_hits(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    _, policy = await load(tmp_path, _policy("stats.flight"), recorder=recorder)
    stats = cache_stats("stats.flight")
    with counted("stats.flight") as moved:
        callers = [asyncio.create_task(_call(policy, "slow")) for _ in range(3)]
        await recorder.wait_for_marks(1)
        await asyncio.sleep(0.02)
        assert stats.waiting == 2  # the first computes, the other two wait
        recorder.gate("slow").set()
        assert await asyncio.wait_for(asyncio.gather(*callers), 5) == ["vslow"] * 3
    assert stats.waiting == 0
    assert moved == {"calls": 3, "call_hits": 2, "call_misses": 1, "populated": 1,
                     "misses": 3}


async def test_a_timed_out_wait_is_stale_with_an_expired_value_else_an_error(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    options = "populate_timeout = '50ms', allow_stale_reads = true"
    runtime, policy = await load(tmp_path, _policy("stats.stale", options), recorder=recorder)
    cache = _memo_cache(runtime, "stats.stale")
    cache._entries['["slow"]'] = (0.0, 0, ["old"])  # an expired value, kept for stale reads
    with counted("stats.stale") as moved:
        refreshing = asyncio.create_task(_call(policy, "slow"))
        await recorder.wait_for_marks(1)
        assert await asyncio.wait_for(_call(policy, "slow"), 5) == "old"
        recorder.gate("slow").set()
        assert await asyncio.wait_for(refreshing, 5) == "vslow"
    assert moved == {"calls": 2, "call_hits": 1, "call_misses": 1, "populated": 1,
                     "misses": 2, "stale": 1}
    del cache._entries['["slow"]']
    recorder.gate("slow").clear()
    with counted("stats.stale") as moved:  # nothing stale to give: the wait is an error
        computing = asyncio.create_task(_call(policy, "slow"))
        await recorder.wait_for_marks(2)
        assert (await asyncio.wait_for(_call(policy, "slow"), 5)).startswith("error")
        recorder.gate("slow").set()
        await asyncio.wait_for(computing, 5)
    assert moved["errors"] == 1 and "stale" not in moved


async def test_python_policies_memoized_functions_count_alike() -> None:
    kumo = make_runtime().kumo
    cached = kumo.memoize(str.upper, {"name": "stats.py", "ttl": 60, "capacity": 4})

    async def fetch(key: str) -> str:
        return key * 2

    cached_async = kumo.memoize(fetch, {"name": "stats.pya", "ttl": 60, "capacity": 4})
    with counted("stats.py") as plain, counted("stats.pya") as coroutine:
        assert [cached("a"), cached("a")] == ["A", "A"]
        assert [await cached_async("b"), await cached_async("b")] == ["bb", "bb"]
    expected = {"calls": 2, "call_hits": 1, "call_misses": 1, "populated": 1, "hits": 1,
                "misses": 1}
    assert plain == expected and coroutine == expected
