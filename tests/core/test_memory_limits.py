"""Finding the memory limits and usage as KumoMTA does: cgroup v2, then v1, then the
ulimit, then physical RAM; soft 75 % of hard, low 80 % of soft (kumocore.node.memory).
The cgroup trees here are files in a temporary directory laid out as the kernel's."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumocore.errors import ConfigError
from kumocore.node import memory_limits
from kumocore.node.memory import MEMORY, MemoryState
from kumocore.node.memory_limits import Cgroup, Limits, usage_and_limits

GIB = 1 << 30


@pytest.fixture(autouse=True)
def fresh_memory_state() -> Iterator[None]:
    MEMORY.reset()
    yield
    MEMORY.reset()


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_v2_cgroup_gives_high_and_max_and_its_working_set(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "proc": "0::/app.slice/kumo\n",
            "cg/app.slice/kumo/memory.max": f"{4 * GIB}\n",
            "cg/app.slice/kumo/memory.high": "max\n",
            "cg/app.slice/kumo/memory.current": f"{3 * GIB}\n",
            "cg/app.slice/kumo/memory.stat": f"anon {GIB // 2}\ninactive_file {2 * GIB}\n",
        },
    )
    cgroup = Cgroup.find(tmp_path / "cg", tmp_path / "proc")
    assert cgroup is not None and cgroup.v2
    assert cgroup.limits() == Limits(soft=None, hard=4 * GIB)
    assert cgroup.usage() == GIB  # current - inactive_file: cold page cache left out
    usage, limits = usage_and_limits(cgroup)
    assert usage == GIB
    assert limits == Limits(soft=3 * GIB, hard=4 * GIB)  # soft: 75 % of the hard limit


def test_the_working_set_is_floored_by_anonymous_memory(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "proc": "0::/\n",
            "cg/memory.max": f"{8 * GIB}",
            "cg/memory.high": f"{6 * GIB}",
            "cg/memory.current": f"{5 * GIB}",
            "cg/memory.stat": f"anon {4 * GIB}\ninactive_file {4 * GIB}\n",
        },
    )
    cgroup = Cgroup.find(tmp_path / "cg", tmp_path / "proc")
    assert cgroup is not None
    assert cgroup.usage() == 4 * GIB
    assert cgroup.limits() == Limits(soft=6 * GIB, hard=8 * GIB)


def test_a_v1_cgroup_without_limits_counts_as_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory_limits, "rss_bytes", lambda: 12345)
    write_tree(
        tmp_path,
        {
            "proc": "4:memory:/docker/abc\n0::/\n",
            "cg/memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n",
            "cg/memory/docker/abc/memory.soft_limit_in_bytes": "9223372036854771712\n",
        },
    )
    cgroup = Cgroup.find(tmp_path / "cg", tmp_path / "proc")
    assert cgroup is not None and not cgroup.v2
    assert cgroup.limits().unlimited
    usage, limits = usage_and_limits(cgroup)  # falls back to RSS and physical RAM
    assert usage == 12345
    assert limits.hard == memory_limits.physical_memory()


def test_a_v1_cgroup_limit_uses_its_hierarchical_working_set(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "proc": "4:memory:/k\n",
            "cg/memory/k/memory.limit_in_bytes": f"{2 * GIB}\n",
            "cg/memory/k/memory.soft_limit_in_bytes": "9223372036854771712\n",
            "cg/memory/k/memory.usage_in_bytes": f"{GIB}\n",
            "cg/memory/k/memory.stat": "rss 1\ntotal_rss 100\ntotal_rss_huge 20\n"
            f"total_inactive_file {GIB - 1000}\n",
        },
    )
    cgroup = Cgroup.find(tmp_path / "cg", tmp_path / "proc")
    assert cgroup is not None
    assert usage_and_limits(cgroup) == (1000, Limits(soft=3 * GIB // 2, hard=2 * GIB))


def test_without_any_limit_hard_is_physical_ram_soft_75_and_low_60_percent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_limits, "physical_memory", lambda: 16 * GIB)
    state = MemoryState()
    state._cgroup_found = True  # no cgroup
    assert state.hard_limit() == 16 * GIB
    assert state.soft_limit() == 12 * GIB
    assert state.low_thresh() == int(12 * GIB * 0.8)


def test_the_ulimit_and_the_environment_narrow_the_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_limits, "rlimits", lambda: Limits(soft=None, hard=GIB))
    assert usage_and_limits(None)[1] == Limits(soft=3 * GIB // 4, hard=GIB)
    monkeypatch.setenv("KUMOD_MEMORY_SOFT_LIMIT", "1234")
    assert usage_and_limits(None)[1] == Limits(soft=1234, hard=GIB)


def test_the_real_rlimit_is_read() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_RSS)
    found = memory_limits.rlimits()
    assert found.hard == (None if hard == resource.RLIM_INFINITY else hard)
    assert found.soft == (None if soft == resource.RLIM_INFINITY else soft)


def test_nothing_known_means_the_getters_answer_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_limits, "physical_memory", lambda: None)
    monkeypatch.setattr(memory_limits, "rlimits", lambda: Limits())
    state = MemoryState()
    state._cgroup_found = True
    assert (state.hard_limit(), state.soft_limit(), state.low_thresh()) == (None, None, None)
    state.sample()  # and nothing is shed
    assert not state.over_limit and not state.low


def test_policy_settings_win_and_a_low_threshold_follows_the_soft_limit() -> None:
    state = MemoryState()
    state.set_limit("soft", 10_000)
    assert state.soft_limit() == 10_000 and state.low_thresh() == 8_000
    state.set_limit("low", 5_000)
    assert state.low_thresh() == 5_000
    state.set_limit("hard", 2.0 * GIB)  # a whole float from Lua is a byte count
    assert state.hard_limit() == 2 * GIB


@pytest.mark.parametrize("bad", [-1, 1.5, "1G", True, None])
def test_a_limit_must_be_a_whole_number_of_bytes(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"kumo\.set_memory_low_thresh: expected a whole"):
        MemoryState().set_limit("low", bad)


def test_crossing_the_soft_limit_clears_registered_caches_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    usage = [100]
    monkeypatch.setattr(
        memory_limits, "usage_and_limits", lambda cgroup: (usage[0], Limits(soft=1000, hard=2000))
    )
    state = MemoryState()

    class Cache:
        def __init__(self) -> None:
            self.entries = {"k": "v"}

        def clear(self) -> None:
            self.entries.clear()

    cache = Cache()
    held = cache.entries
    state.register_cache(cache)
    state.sample()
    assert (state.over_limit, state.low, held) == (False, False, {"k": "v"})
    usage[0] = 900
    state.sample()
    assert (state.over_limit, state.low) == (False, True)  # over 80 % of the soft limit
    usage[0] = 1000
    state.sample()
    assert state.over_limit and held == {}
    held["again"] = "x"
    state.sample()  # still over: no new transition, nothing cleared
    assert held == {"again": "x"}
    usage[0] = 10
    state.sample()
    assert not state.over_limit and not state.low


def test_setting_the_hard_limit_leaves_the_default_soft_limit_as_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # KumoMTA derives the default soft limit before applying the policy's hard limit.
    monkeypatch.setattr(memory_limits, "physical_memory", lambda: 16 * GIB)
    monkeypatch.setattr(memory_limits, "rlimits", lambda: Limits())
    state = MemoryState()
    state._cgroup_found = True
    state.set_limit("hard", 4 * GIB)
    assert (state.hard_limit(), state.soft_limit()) == (4 * GIB, 12 * GIB)
