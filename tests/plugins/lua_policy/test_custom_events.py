"""Custom event names in kumo.on and LuaPolicy.call_custom_event."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore import PolicyError
from kumocore.policy.custom_events import CustomEventSource, custom_event_source

from .support import load


async def test_dotted_custom_events_are_registered_and_callable(tmp_path: Path) -> None:
    _, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('make.webhook', function(domain, tenant, campaign)
          return { name = 'webhook', args = { domain, tenant, campaign } }
        end)
        kumo.on('kumo.tsa.config.monitor', function(args) return args.x * 2 end)
        kumo.on('make.constructor', function()
          return function(x) return 'called with ' .. x end
        end)
        kumo.on('my_own_event', function() return 'free-form' end)
    """)
    assert policy.custom_events == [
        "kumo.tsa.config.monitor", "make.constructor", "make.webhook", "my_own_event"]
    assert policy.has_custom_event("make.webhook")
    assert not policy.has_custom_event("make.amqp")
    assert await policy.call_custom_event("make.webhook", "d", "t", "c") == {
        "name": "webhook", "args": ["d", "t", "c"]}
    assert await policy.call_custom_event("kumo.tsa.config.monitor", {"x": 21}) == 42
    assert await policy.call_custom_event("my_own_event") == "free-form"
    constructor = await policy.call_custom_event("make.constructor")
    assert await policy.call_lua_function(constructor, "y") == "called with y"
    # custom events are not hooks: the policy plugin implements only built-in events
    assert policy.events == []


async def test_custom_event_last_registration_wins_and_errors_name_the_line(
    tmp_path: Path,
) -> None:
    _, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('make.webhook', function() return 'first' end)
        kumo.on('make.webhook', function()
          error('constructor broke')
        end)
    """)
    with pytest.raises(PolicyError) as info:
        await policy.call_custom_event("make.webhook")
    assert info.value.where == f"{tmp_path / 'policy.lua'}:4"
    assert "constructor broke" in str(info.value)
    with pytest.raises(KeyError, match=r"no handler for the custom event 'make\.kafka'"):
        await policy.call_custom_event("make.kafka")


async def test_misspelt_builtin_event_still_gets_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="did you mean 'get_queue_config'"):
        await load(tmp_path, """\
            local kumo = require 'kumo'
            kumo.on('get_queue_confg', function() end)
        """)


async def test_get_event_registrars_lists_who_registered(tmp_path: Path) -> None:
    write_helper = tmp_path / "helper.lua"
    write_helper.write_text(
        "local kumo = require 'kumo'\n"
        "kumo.on('get_queue_config', function() end)\n"
        "return {}\n")
    _, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        require 'helper'
        kumo.on('get_queue_config', function() end)
        kumo.on('make.probe', function()
          local out = {}
          for i, stack in ipairs(kumo.get_event_registrars 'get_queue_config') do
            out[i] = stack[1]
          end
          return out
        end)
    """)
    stacks = await policy.call_custom_event("make.probe")
    assert [s.rsplit("/", 1)[-1] for s in stacks] == ["helper.lua:2", "policy.lua:3"]


async def test_features_find_the_handler_through_the_core_lookup(tmp_path: Path) -> None:
    runtime, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('make.webhook', function(domain) return 'hook for ' .. domain end)
    """)
    source = custom_event_source(runtime.pm, "make.webhook")
    assert source is policy and isinstance(policy, CustomEventSource)
    assert await source.call_custom_event("make.webhook", "example.com") == "hook for example.com"
    assert custom_event_source(runtime.pm, "make.amqp") is None
