"""``require 'policy-extras.X'`` finds kumocore's own modules, unless the operator put a
module of that name in a directory ahead of them (the policy's own directory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_lua_policy import LuaPolicyError

from tests.plugins.lua_policy.helpers.conftest import Load

MODULES = [
    "policy_utils",
    "listener_domains",
    "sources",
    "dkim_sign",
    "queue",
    "shaping",
    "log_hooks",
]


@pytest.mark.parametrize("name", MODULES)
async def test_require_finds_kumocores_own_module(load_policy: Load, name: str) -> None:
    _, policy = await load_policy(
        f"""
        local kumo = require 'kumo'
        local mod = require 'policy-extras.{name}'
        kumo.on('get_queue_config', function()
          local found = package.searchpath('policy-extras.{name}', package.path)
          return kumo.make_queue_config {{ egress_pool = found }}
        end)
        assert(type(mod) == 'table')
        """
    )
    config = await policy.call_event("get_queue_config", "d", None, None, None)
    assert config.egress_pool.endswith(f"kumocore_lua_policy/lua/policy-extras/{name}.lua")


async def test_a_module_in_the_policy_directory_comes_first(
    load_policy: Load, tmp_path: Path
) -> None:
    (tmp_path / "policy-extras").mkdir()
    (tmp_path / "policy-extras" / "sources.lua").write_text("return { mine = true }\n")
    _, policy = await load_policy(
        """
        local kumo = require 'kumo'
        local sources = require 'policy-extras.sources'
        kumo.on('get_queue_config', function()
          return kumo.make_queue_config { egress_pool = tostring(sources.mine) }
        end)
        """
    )
    config = await policy.call_event("get_queue_config", "d", None, None, None)
    assert config.egress_pool == "true"


async def test_a_module_kumocore_does_not_ship_is_not_found(load_policy: Load) -> None:
    with pytest.raises(LuaPolicyError, match=r"module 'policy-extras\.typing' not found"):
        await load_policy("local typing = require 'policy-extras.typing'")


async def test_policy_utils_helpers_behave_as_documented(load_policy: Load, tmp_path: Path) -> None:
    (tmp_path / "data.toml").write_text('a = 1\n[b]\nc = "x"\n')
    (tmp_path / "data.json").write_text('{"a": 2}')
    await load_policy(
        """
        local u = require 'policy-extras.policy_utils'
        u.assert_eq(u.load_json_or_toml_file('DIR/data.toml'), { a = 1, b = { c = 'x' } })
        u.assert_eq(u.load_json_or_toml_file('DIR/data.json'), { a = 2 })
        u.assert_eq(u.load_json_or_toml_file({ inline = true }), { inline = true })
        u.assert_eq(u.merge_into({ a = 1 }, { b = 2 }), { a = 1, b = 2 })
        local merged = u.recursive_merge_into({ t = { x = 1 } }, { t = { y = 2 } })
        u.assert_eq(merged, { t = { x = 1, y = 2 } })
        assert(u.table_contains({ 'a', 'b' }, 'b') and not u.table_contains({ 'a' }, 'z'))
        assert(u.table_is_empty({}) and not u.table_is_empty({ 1 }))
        assert(u.starts_with('hello', 'he') and u.ends_with('hello', 'llo'))
        u.assert_eq({ u.split_ip_port('10.0.0.1:25') }, { '10.0.0.1', '25' })
        u.assert_eq({ u.split_ip_port('[::1]:2525') }, { '::1', '2525' })
        u.assert_ne({ 1 }, { 2 })
        u.assert_matches('abc123', '%d+')
        assert(not pcall(u.assert_eq, 1, 2))
        """
    )


async def test_log_hooks_new_json_sets_up_a_hook_and_names_the_bad_line(
    load_policy: Load,
) -> None:
    _, policy = await load_policy(
        """
        local log_hooks = require 'policy-extras.log_hooks'
        log_hooks:new_disabled { name = 'off', url = 'http://127.0.0.1:1/' }
        log_hooks:new_json { name = 'webhook', url = 'http://127.0.0.1:1/' }
        """
    )
    assert policy.has_custom_event("make.webhook.log_hook")
    assert policy.registry.handlers("should_enqueue_log_record")
    with pytest.raises(LuaPolicyError, match=r"policy\.lua:3: .*url is required"):
        await load_policy(
            """
            local log_hooks = require 'policy-extras.log_hooks'
            log_hooks:new_json { name = 'webhook' }
            """
        )
