"""What a policy is told when it gives a policy-extras helper's setup (or the loaders
behind them) something other than a list of file names: the helper, the argument and
its Lua type, never a Python ``TypeError`` about ``NoneType``."""

from __future__ import annotations

from pathlib import Path

from tests.plugins.lua_policy.test_stdlib_arguments import assert_named, refusals


async def test_helper_setups_refuse_what_is_not_a_list_of_file_names(tmp_path: Path) -> None:
    got = await refusals(tmp_path, """\
        local listener_domains = require 'policy-extras.listener_domains'
        local sources = require 'policy-extras.sources'
        local dkim_sign = require 'policy-extras.dkim_sign'
        local queue = require 'policy-extras.queue'
        err(function() return listener_domains:setup(nil) end)
        err(function() return listener_domains:setup(5) end)
        err(function() return sources:setup(nil) end)
        err(function() return sources:setup({'a.toml', 5}) end)
        err(function() return dkim_sign:setup(true) end)
        err(function() return queue:setup({true}) end)
        err(kumo.shaping.load, nil)
    """)
    assert_named(got, [
        "policy-extras.listener_domains: setup takes a list of file names, got nil",
        "policy-extras.listener_domains: setup takes a list of file names, got number",
        "policy-extras.sources: setup takes a list of file names, got nil",
        "policy-extras.sources: setup takes a list of file names; entry 2 is a number",
        "policy-extras.dkim_sign: setup takes a list of file names, got boolean",
        "policy-extras.queue: setup takes a list of file names; entry 1 is a boolean",
        "kumo.shaping.load: setup takes a list of file names, got nil",
    ])


async def test_the_loaders_behind_the_helpers_name_their_argument(tmp_path: Path) -> None:
    got = await refusals(tmp_path, """\
        err(kumo.policy_extras.load_data_file, nil)
        err(kumo.policy_extras.load_data_file, {})
        err(kumo.policy_extras.shaping_automation, nil)
        err(kumo.policy_extras.shaping_automation, 12345)
    """)
    assert_named(got, [
        "policy-extras.policy_utils: PATH must be a string, got nil",
        "policy-extras.policy_utils: PATH must be a string, got table",
        "shaping_automation: HANDLE must be the automation_handle of a table "
        "kumo.shaping.load returned, got nil",
        "got number",
    ])
