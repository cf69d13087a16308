"""Lua shares the event loop's thread: code that never yields is stopped after
``LUA_SLICE_SECONDS`` with an error naming its line, and the heap is capped, so a policy's
``while true do end`` or ``string.rep('x', 2^31)`` is a policy error, not a frozen or
bloated server (an outside check froze the process, SIGTERM included)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kumocore_lua_policy import engine

from kumocore import PolicyError

from .support import load


@pytest.fixture(autouse=True)
def short_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "LUA_SLICE_SECONDS", 0.5)


async def test_a_handler_that_never_yields_is_stopped_naming_its_line(tmp_path: Path) -> None:
    _, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('get_queue_config', function(domain)
          while true do end
        end)
    """)
    started = time.monotonic()
    with pytest.raises(PolicyError, match=r"ran for more than 0.5s without yielding") as info:
        await policy.call_event("get_queue_config", "x.example", None, None, None)
    assert time.monotonic() - started < 3
    assert str(info.value).startswith(f"{tmp_path / 'policy.lua'}:3:")


async def test_a_slow_handler_that_yields_is_not_stopped(tmp_path: Path) -> None:
    _, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('get_queue_config', function(domain)
          for i = 1, 8 do kumo.sleep(0.1) end  -- 0.8 s, but it yields between the naps
          return kumo.make_queue_config { max_age = '1h' }
        end)
    """)
    config = await policy.call_event("get_queue_config", "x.example", None, None, None)
    assert config.max_age == 3600


async def test_a_handler_past_the_memory_cap_is_a_policy_error(tmp_path: Path) -> None:
    _, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('get_queue_config', function(domain)
          local s = string.rep('x', 3 * 2^29)  -- 1.5 GiB, over the 1 GiB cap
          return nil
        end)
    """)
    with pytest.raises(PolicyError, match="not enough memory") as info:
        await policy.call_event("get_queue_config", "x.example", None, None, None)
    assert f"{tmp_path / 'policy.lua'}:2" in str(info.value)  # the handler's line


async def test_top_level_code_that_never_yields_fails_the_load(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="without yielding"):
        await load(tmp_path, "local kumo = require 'kumo'\nwhile true do end\n")
