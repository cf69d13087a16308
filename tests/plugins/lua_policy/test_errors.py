"""Failures: rejections pass through unchanged; every other error names the policy's line."""

from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_lua_policy import LuaPolicyError

from kumocore import ConfigError, PolicyError, Rejection
from kumocore.mail.address import parse_envelope_address

from .support import Recorder, load, write


async def test_reject_in_mail_from_propagates_as_the_rejection(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_mail_from', function(sender)
          if sender.domain == 'spammer.example' then
            kumo.reject(550, 'no')
          end
        end)
    """)
    await runtime.hooks.smtp_server_mail_from(parse_envelope_address("a@good.example"), {})
    with pytest.raises(Rejection) as info:
        await runtime.hooks.smtp_server_mail_from(parse_envelope_address("a@spammer.example"), {})
    assert type(info.value) is Rejection
    assert (info.value.code, info.value.message) == (550, "no")
    assert not info.value.disconnect


async def test_reject_421_disconnects(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function() kumo.reject(421, 'go away') end)
    """)
    with pytest.raises(Rejection) as info:
        await runtime.hooks.smtp_server_ehlo("x", {})
    assert info.value.code == 421 and info.value.disconnect


@pytest.mark.parametrize(("call", "needle"), [
    ("kumo.reject(451, nil)", "the reply text must be a string, got nil"),
    ("kumo.reject('4xx', 'no')", "the code must be a number, got '4xx'"),
])
async def test_reject_with_a_bad_argument_is_a_policy_error_naming_the_line(
    tmp_path: Path, call: str, needle: str
) -> None:
    # kumo.reject(451, nil) answered the client "451 None".
    runtime, _ = await load(tmp_path, f"""\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function() {call} end)
    """)
    with pytest.raises(PolicyError, match=needle) as info:
        await runtime.hooks.smtp_server_ehlo("x", {})
    assert not isinstance(info.value, Rejection)
    assert f"{tmp_path / 'policy.lua'}:2" in str(info.value)


async def test_rejection_from_an_awaited_function_passes_through(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function() kumo.test.reject(451, 'later') end)
    """)
    with pytest.raises(Rejection, match="451 later"):
        await runtime.hooks.smtp_server_ehlo("x", {})


async def test_pcall_catches_a_rejection_and_error_rethrows_it(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function()
          local ok, err = pcall(kumo.reject, 550, 'caught')
          kumo.test.mark(tostring(ok) .. ' ' .. tostring(err))
          error(err)
        end)
    """, recorder=recorder)
    with pytest.raises(Rejection, match="550 caught"):
        await runtime.hooks.smtp_server_ehlo("x", {})
    assert recorder.marks == ["false 550 caught"]


async def test_runtime_error_names_file_and_line(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'

        function merge_into(src, dest)
          for k, v in pairs(src) do
            dest[k] = v
          end
        end

        kumo.on('get_queue_config', function(domain, tenant)
          local params = {}
          merge_into(nil, params)
          return kumo.make_queue_config(params)
        end)
    """)
    with pytest.raises(PolicyError) as info:
        await runtime.hooks.get_queue_config("gmail.com", "t", None, None)
    error = info.value
    assert isinstance(error, LuaPolicyError)
    assert error.where == f"{tmp_path / 'policy.lua'}:4"
    assert str(error) == (
        f"{tmp_path / 'policy.lua'}:4: bad argument #1 to 'for iterator' "
        "(table expected, got nil)")
    assert "policy.lua:11: in function" in (error.lua_traceback or "")
    assert any("kumo.on('get_queue_config'" in note for note in error.__notes__)


async def test_error_in_a_long_path_keeps_the_full_file_name(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 40) / ("e" * 40)
    runtime, _ = await load(deep, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function() local x = nil; return x.field end)
    """)
    with pytest.raises(PolicyError) as info:
        await runtime.hooks.smtp_server_ehlo("x", {})
    assert info.value.where == f"{deep / 'policy.lua'}:2"
    assert "attempt to index a nil value (local 'x')" in str(info.value)


async def test_error_with_explicit_level_blames_the_caller(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        local function check(v) if not v then error('value required', 2) end end
        kumo.on('smtp_server_ehlo', function()
          check(nil)
        end)
    """)
    with pytest.raises(PolicyError) as info:
        await runtime.hooks.smtp_server_ehlo("x", {})
    assert info.value.where == f"{tmp_path / 'policy.lua'}:4"
    assert info.value.detail == "value required"


async def test_error_in_a_required_module_names_that_module(tmp_path: Path) -> None:
    write(tmp_path, "lib.lua", """\
        return { boom = function() error('module failure') end }
    """)
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        local lib = require 'lib'
        kumo.on('smtp_server_ehlo', function() lib.boom() end)
    """)
    with pytest.raises(PolicyError) as info:
        await runtime.hooks.smtp_server_ehlo("x", {})
    assert info.value.where == f"{tmp_path / 'lib.lua'}:1"


async def test_syntax_error_fails_the_load_naming_the_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        await load(tmp_path, """\
            local kumo = require 'kumo'
            kumo.on('init', function()
              local x = = 1
            end)
        """)
    assert info.value.where == f"{tmp_path / 'policy.lua'}:3"
    assert "unexpected symbol near '='" in str(info.value)


async def test_failing_kumo_function_names_the_function_and_line(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('get_egress_path_config', function()
          local path = kumo.make_egress_path { connection_limit = 'lots' }
          return path
        end)
    """)
    with pytest.raises(PolicyError) as info:
        await runtime.hooks.get_egress_path_config("gmail.com", "ip-1", "site")
    assert info.value.where == f"{tmp_path / 'policy.lua'}:3"
    assert "kumo.make_egress_path" in str(info.value)
    assert "connection_limit" in str(info.value)
    assert isinstance(info.value.__cause__, ConfigError)


async def test_failing_tail_call_names_the_handler(tmp_path: Path) -> None:
    # `return f(x)` replaces the handler's frame: the handler's definition is what is left.
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('get_egress_path_config', function()
          return kumo.make_egress_path { connection_limit = 'lots' }
        end)
    """)
    with pytest.raises(PolicyError) as info:
        await runtime.hooks.get_egress_path_config("gmail.com", "ip-1", "site")
    assert info.value.where == f"{tmp_path / 'policy.lua'}:2"
    assert "kumo.make_egress_path" in str(info.value)


async def test_failing_async_function_names_the_function_and_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        await load(tmp_path, """\
            local kumo = require 'kumo'
            local x = kumo.test.fail('resolver exploded')
        """)
    assert info.value.where == f"{tmp_path / 'policy.lua'}:2"
    assert str(info.value).endswith("kumo.test.fail: resolver exploded")


async def test_table_style_function_refuses_positional_arguments(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"kumo.make_queue_config takes one table of options"):
        await load(tmp_path, "require('kumo').make_queue_config('x', 'y')")


async def test_lua_semantics_table_literal_keys_never_match(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local BY_SOURCE = { [{ 'site', 'ip-1' }] = { max_message_rate = '1/s' } }
        kumo.test.mark(BY_SOURCE[{ 'site', 'ip-1' }] == nil)
    """, recorder=recorder)
    assert recorder.marks == [True]


async def test_unknown_message_method_suggests_the_right_one(tmp_path: Path) -> None:
    from kumocore.mail.message import Message

    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          msg:get_first_header_value('Subject')
        end)
    """)
    with pytest.raises(PolicyError) as info:
        await runtime.hooks.smtp_server_message_received(
            Message("a@b.example", "c@d.example", b"Subject: x\r\n\r\nbody\r\n"), {})
    assert info.value.where == f"{tmp_path / 'policy.lua'}:3"
    assert "did you mean msg:get_first_named_header_value?" in str(info.value)


async def test_non_utf8_string_for_python_is_a_policy_error(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function() kumo.test.mark('\\xff') end)
    """)
    with pytest.raises(PolicyError, match=r"kumo.test.mark: bad argument #1: error converting "
                       r"Lua string to String \(invalid utf-8") as info:
        await runtime.hooks.smtp_server_ehlo("x", {})
    assert info.value.where == f"{tmp_path / 'policy.lua'}:2"


async def test_a_kumo_function_called_without_an_argument_says_which_one_is_missing(
    tmp_path: Path,
) -> None:
    # KumoMTA passes nil for an argument left out; kumocore names it, in the policy's
    # words rather than Python's ("missing 1 required positional argument").
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local ok, err = pcall(kumo.time.with_ymd_hms, 2000)
        kumo.test.mark(tostring(err))
        ok, err = pcall(kumo.dmarc.check_msg)
        kumo.test.mark(tostring(err))
    """, recorder=recorder)
    assert recorder.marks == [
        "kumo.time.with_ymd_hms: missing a required argument: 'month' "
        "(called with 1 argument(s))",
        "kumo.dmarc.check_msg: missing a required argument: 'msg' (called with 0 argument(s))",
    ]
