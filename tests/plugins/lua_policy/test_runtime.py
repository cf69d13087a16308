"""The Lua runtime: coroutines over asyncio, the kumo module, the standard library."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.common.dns_server import TestDnsServer, reference_zones
from kumocore import PolicyError
from kumocore.mail.message import Message

from .support import DATA, Recorder, load, write


async def test_top_level_code_awaits_async_functions(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local value = kumo.test.echo { answer = 42, list = { 'a', 'b' } }
        kumo.test.mark(value.answer + #value.list)
    """, recorder=recorder)
    assert recorder.marks == [44]


async def test_io_suspends_through_pcall_and_metamethods(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local ok, value = pcall(kumo.test.echo, 'through pcall')
        kumo.test.mark(value)
        local lazy = setmetatable({}, { __index = function(_, k) return kumo.test.echo(k) end })
        kumo.test.mark(lazy.through_index)
        local ok2, err = pcall(kumo.test.fail, 'caught')
        kumo.test.mark(tostring(ok2) .. ' ' .. tostring(err))
    """, recorder=recorder)
    assert recorder.marks == [
        "through pcall", "through_index", "false kumo.test.fail: caught"]


async def test_require_kumo_returns_one_plain_mutable_table(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local again = require 'kumo'
        local original = kumo.test.mark
        kumo.test.mark = function(v) original('wrapped ' .. v) end
        again.test.mark('call')
        -- its only metatable is the guard naming KumoMTA functions kumocore lacks
        kumo.test.mark(type(getmetatable(kumo).__index) .. ' ' .. type(kumo.dns.lookup_mx))
    """, recorder=recorder)
    assert recorder.marks == ["wrapped call", "wrapped function function"]


async def test_every_contributed_function_is_exposed_with_nested_names(tmp_path: Path) -> None:
    runtime, policy = await load(tmp_path, "local kumo = require 'kumo'")
    check = policy.engine.lua.eval("""function(names)
        local kumo = require 'kumo'
        local missing = {}
        for _, name in ipairs(names) do
          local value = kumo
          for part in name:gmatch('[^.]+') do value = value and value[part] end
          -- kumo.version is a string, as in KumoMTA (a function for Python policies)
          local wanted = name == 'version' and 'string' or 'function'
          if type(value) ~= wanted then missing[#missing + 1] = name end
        end
        return table.concat(missing, ',')
    end""")
    assert check(policy.engine.conv.to_lua(runtime.kumo.names())) == ""
    assert "dns.lookup_mx" in runtime.kumo.names()
    assert "dkim.rsa_sha256_signer" in runtime.kumo.names()


async def test_standard_libraries_work(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local t = { 'b', 'c', 'a' }
        table.sort(t)
        kumo.test.mark(table.concat(t, ','))
        kumo.test.mark(string.format('%s-%d', ('x'):upper(), 7 // 2))
        kumo.test.mark(math.type(3) .. ' ' .. math.type(3.0))
        kumo.test.mark(utf8.len('héllo'))
    """, recorder=recorder)
    assert recorder.marks == ["a,b,c", "X-3", "integer float", 5]


async def test_require_finds_modules_beside_the_policy(tmp_path: Path) -> None:
    recorder = Recorder()
    write(tmp_path, "helpers/shaping.lua", """\
        local kumo = require 'kumo'
        local M = {}
        -- module top-level code may await too
        M.greeting = kumo.test.echo('hello from a module')
        return M
    """)
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local shaping = require 'helpers.shaping'
        kumo.test.mark(shaping.greeting)
        kumo.test.mark(require('helpers.shaping') == shaping)
    """, recorder=recorder)
    assert recorder.marks == ["hello from a module", True]


async def test_require_of_a_missing_module_names_the_searched_paths(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="module 'nowhere' not found") as info:
        await load(tmp_path, "local x = require 'nowhere'")
    assert info.value.where == f"{tmp_path / 'policy.lua'}:1"
    assert str(tmp_path / "nowhere.lua") in str(info.value)


async def test_dofile_runs_a_file_that_awaits(tmp_path: Path) -> None:
    recorder = Recorder()
    inner = write(tmp_path, "inner.lua", """\
        local kumo = require 'kumo'
        return kumo.test.echo('inner done')
    """)
    await load(tmp_path, f"""\
        local kumo = require 'kumo'
        kumo.test.mark(dofile('{inner.as_posix()}'))
    """, recorder=recorder)
    assert recorder.marks == ["inner done"]


async def test_print_goes_to_python_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await load(tmp_path, "print('hello', 1, nil, true)")
    assert capsys.readouterr().out == "hello\t1\tnil\ttrue\n"


async def test_python_module_of_lupa_is_not_exposed(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, "require('kumo').test.mark(type(python))", recorder=recorder)
    assert recorder.marks == ["nil"]


async def test_io_needing_call_in_a_non_yieldable_callback_is_a_clear_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(PolicyError, match=r"kumo.test.echo needs I/O") as info:
        await load(tmp_path, """\
            local kumo = require 'kumo'
            local t = { 3, 1, 2 }
            table.sort(t, function(a, b) return kumo.test.echo(a) < b end)
        """)
    assert info.value.where == f"{tmp_path / 'policy.lua'}:3"


async def test_handlers_interleave_while_awaiting(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          local tag = msg:get_first_named_header_value('X-Tag')
          kumo.test.mark(tag .. ' start')
          local waited = kumo.test.wait(tag)
          kumo.test.mark(waited .. ' end')
        end)
    """, recorder=recorder)

    def message(tag: str) -> Message:
        return Message("a@examplecorp.com", "b@gmail.com", f"X-Tag: {tag}\r\n".encode() + DATA)

    first = asyncio.create_task(runtime.hooks.smtp_server_message_received(message("A"), {}))
    second = asyncio.create_task(runtime.hooks.smtp_server_message_received(message("B"), {}))
    await recorder.wait_for_marks(2)
    recorder.gate("B").set()  # the second message finishes while the first still waits
    await second
    recorder.gate("A").set()
    await first
    assert recorder.marks == ["A start", "B start", "B end", "A end"]


async def test_dns_lookups_of_concurrent_handlers_interleave(tmp_path: Path) -> None:
    recorder = Recorder()
    with TestDnsServer(reference_zones()) as dns:
        runtime, _ = await load(tmp_path, f"""\
            local kumo = require 'kumo'
            kumo.dns.configure_resolver {{ name_servers = {{ '{dns.address}' }} }}
            kumo.on('smtp_server_message_received', function(msg)
              local domain = msg:recipient().domain
              kumo.test.mark('lookup ' .. domain)
              local mx = kumo.dns.lookup_mx(domain)
              kumo.test.mark(domain .. ' ' .. mx.site_name)
            end)
        """, recorder=recorder)
        await asyncio.gather(*(
            runtime.hooks.smtp_server_message_received(
                Message("a@examplecorp.com", f"b@{domain}", DATA), {})
            for domain in ("gmail.com", "yahoo.com")
        ))
    # Both lookups started before either answer was used: the coroutines interleaved.
    assert recorder.marks[:2] == ["lookup gmail.com", "lookup yahoo.com"]
    assert sorted(recorder.marks[2:]) == [
        "gmail.com (alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com",
        "yahoo.com (mta5|mta6|mta7).am0.yahoodns.net",
    ]


async def test_cancelled_handler_closes_its_coroutine(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function(domain)
          local on_close = { __close = function() kumo.test.mark('closed') end }
          local guard <close> = setmetatable({}, on_close)
          kumo.test.wait('never')
        end)
    """, recorder=recorder)
    task = asyncio.create_task(runtime.hooks.smtp_server_ehlo("x", {}))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.marks == ["closed"]
