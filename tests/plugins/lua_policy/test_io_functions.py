"""kumo.dns.lookup_ptr/rbl_lookup/define_resolver, kumo.secrets.load, kumo.make_throttle,
kumo.spawn_task, kumo.sleep, kumo.available_parallelism, kumo.set_diagnostic_log_filter and
kumo.make_message/inject_message — each from Lua and from Python, with real parts."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kumocore_lua_policy import LuaPolicyPlugin

from bench.common.dns_server import TestDnsServer
from kumocore import PolicyError
from tests.reception.harness import make_reception
from tests.support.vault_server import vault_server

from .support import Recorder, load, make_runtime, write

ZONES = {
    "1.0.0.127.in-addr.arpa": {"PTR": ["localhost."]},
    "2.0.0.127.bl.example": {"A": ["127.0.0.2"], "TXT": ["Listed: see https://bl.example/"]},
    "3.0.0.127.rbl.internal": {"A": ["127.0.0.4"]},
}


@pytest.fixture
def dns_server() -> Iterator[TestDnsServer]:
    with TestDnsServer(ZONES) as server:
        yield server


# ------------------------------------------------------------------------------ DNS


async def test_lua_ptr_and_rbl_lookups_with_a_named_resolver(
    tmp_path: Path, dns_server: TestDnsServer
) -> None:
    recorder = Recorder()
    recorder.value = dns_server.address
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.dns.configure_resolver { name_servers = { kumo.test.value() } }
        kumo.test.mark(kumo.dns.lookup_ptr('127.0.0.1'))
        local ip, reason = kumo.dns.rbl_lookup('127.0.0.2:25', 'bl.example')
        kumo.test.mark({ ip, reason })
        local ip, reason = kumo.dns.rbl_lookup('127.0.0.9', 'bl.example')
        kumo.test.mark({ ip == nil, reason == nil })
        local ok, err = pcall(kumo.dns.rbl_lookup, '127.0.0.3', 'rbl.internal', 'rbl')
        kumo.test.mark({ ok, tostring(err):match('resolver rbl is not defined') ~= nil })
        kumo.dns.define_resolver('rbl', { Hickory = { name_servers = { kumo.test.value() } } })
        local ip, reason = kumo.dns.rbl_lookup('127.0.0.3', 'rbl.internal', 'rbl')
        kumo.test.mark({ ip, reason == nil })
    """, recorder=recorder)
    assert recorder.marks == [
        ["localhost."],
        ["127.0.0.2", "Listed: see https://bl.example/"],
        [True, True],
        [False, True],
        ["127.0.0.4", True],
    ]


async def test_define_resolver_refuses_kinds_kumocore_lacks(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="'Unbound' resolver is not supported by kumocore yet"):
        await load(tmp_path, "require('kumo').dns.define_resolver('u', { Unbound = {} })")


async def test_python_ptr_and_rbl_lookups(dns_server: TestDnsServer) -> None:
    kumo = make_runtime().kumo
    kumo.dns.configure_resolver(name_servers=[dns_server.address])
    assert await kumo.dns.lookup_ptr("127.0.0.1") == ["localhost."]
    assert await kumo.dns.rbl_lookup("127.0.0.2", "bl.example") == (
        "127.0.0.2", "Listed: see https://bl.example/")
    assert await kumo.dns.rbl_lookup("127.0.0.7", "bl.example") == (None, None)


# ------------------------------------------------------------------------------ secrets


async def test_lua_secrets_from_a_file_inline_and_vault(tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_bytes(b"s3cret\n")
    recorder = Recorder()
    async with vault_server() as vault:
        vault.put("x", key="from vault")
        recorder.value = {"file": str(secret), "vault": vault.source("x")}
        await load(tmp_path, """\
            local kumo = require 'kumo'
            kumo.test.mark(kumo.secrets.load(kumo.test.value().file))
            kumo.test.mark(kumo.secrets.load { key_data = 'inline' })
            kumo.test.mark(kumo.secrets.load(kumo.test.value().vault))
        """, recorder=recorder)
    # A Lua string reaches Python as str again (the Lua side had the bytes).
    assert recorder.marks == ["s3cret\n", "inline", "from vault"]


def test_python_secrets_load(tmp_path: Path) -> None:
    kumo = make_runtime().kumo
    (tmp_path / "k").write_bytes(b"abc")
    assert kumo.secrets.load(str(tmp_path / "k")) == b"abc"
    assert kumo.secrets.load({"key_data": "xyz"}) == b"xyz"
    with pytest.raises(Exception, match="cannot read"):
        kumo.secrets.load(str(tmp_path / "missing"))


# ------------------------------------------------------------------------------ throttles


async def test_lua_throttle_counts_and_sleep_if_throttled_waits(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local results = {}
        for i = 1, 3 do
          local r = kumo.make_throttle('lua-test', '2/minute'):throttle()
          table.insert(results, { r.throttled, r.limit, r.remaining, r.retry_after ~= nil })
        end
        kumo.test.mark(results)
        local t = kumo.make_throttle('lua-sleep', '10/s,max_burst=1')
        -- KumoMTA's GCRA admits max_burst + 1 at once: the third call must wait.
        kumo.test.mark({ t:sleep_if_throttled(), t:sleep_if_throttled(), t:sleep_if_throttled() })
    """, recorder=recorder)
    throttled, slept = recorder.marks
    assert throttled == [[False, 2, 1, False], [False, 2, 0, False], [True, 2, 0, True]]
    assert slept == [False, False, True]


async def test_python_throttle_shares_the_budget_by_name() -> None:
    kumo = make_runtime().kumo
    first, second = kumo.make_throttle("py", "1/hour"), kumo.make_throttle("py", "1/hour")
    assert (await first.throttle())["throttled"] is False
    assert (await second.throttle())["throttled"] is True
    started = time.monotonic()
    waits = [await kumo.make_throttle("py-sleep", "20/s,max_burst=1").sleep_if_throttled()
             for _ in range(3)]
    assert waits == [False, False, True]
    assert time.monotonic() - started < 5.0


async def test_make_throttle_refuses_a_bad_spec_at_load(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="invalid throttle spec"):
        await load(tmp_path, "require('kumo').make_throttle('x', 'lots')")


# ------------------------------------------------------------------------------ tasks


async def test_lua_spawn_task_runs_the_named_handler_with_args(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('init', function()
          kumo.spawn_task { event_name = 'my.task', args = { 'hello', 'there' } }
        end)
        kumo.on('my.task', function(args)
          kumo.sleep(0.01)
          kumo.test.mark(args)
        end)
    """, recorder=recorder)
    await runtime.run_init()
    assert await recorder.wait_for_marks(1) == [["hello", "there"]]


async def test_a_failing_spawned_task_is_logged_once_and_stops(tmp_path: Path) -> None:
    import asyncio

    from structlog.testing import capture_logs

    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('init', function() kumo.spawn_task { event_name = 'bad.task' } end)
        kumo.on('bad.task', function() error 'task went wrong' end)
    """)
    with capture_logs() as logs:
        await runtime.run_init()
        for _ in range(200):
            if any(e["event"] == "spawned task failed" for e in logs):
                break
            await asyncio.sleep(0.01)
    (failed,) = [e for e in logs if e["event"] == "spawned task failed"]
    assert failed["task_event"] == "bad.task" and "task went wrong" in failed["error"]


async def test_spawn_task_without_a_handler_fails_in_init(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('init', function() kumo.spawn_task { event_name = 'nobody.home' } end)
    """)
    with pytest.raises(PolicyError, match=r"no handler registered for event 'nobody\.home'"):
        await runtime.run_init()


async def test_python_spawn_task_calls_the_policy_function(tmp_path: Path) -> None:
    import asyncio

    path = write(tmp_path, "policy.py", """\
        from kumocore import hookimpl
        seen = []

        @hookimpl
        def kumo_init(kumo):
            kumo.spawn_task(event_name="my.task", args=[1, 2])

        async def my_task(args):
            seen.append(args)
    """)
    runtime = make_runtime()
    await runtime.load(path)
    module = runtime.pm.get_plugin("policy")
    async with asyncio.timeout(5):
        while not module.seen:
            await asyncio.sleep(0.01)
    assert module.seen == [[1, 2]]


async def test_lua_sleep_parallelism_and_log_filter(tmp_path: Path) -> None:
    import logging

    recorder = Recorder()
    started = time.monotonic()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.sleep(0.05)
        kumo.test.mark(kumo.available_parallelism())
        kumo.set_diagnostic_log_filter 'kumod=debug'
        local ok, err = pcall(kumo.set_diagnostic_log_filter, 'kumod=loud')
        kumo.test.mark({ ok, tostring(err):match('unknown level') ~= nil })
        local ok = pcall(kumo.sleep, -1)
        kumo.test.mark(ok)
    """, recorder=recorder)
    try:
        assert time.monotonic() - started >= 0.05
        assert recorder.marks == [len(os.sched_getaffinity(0)), [False, True], False]
        assert logging.getLogger().level == logging.DEBUG
    finally:
        make_runtime().kumo.set_diagnostic_log_filter("kumod=info")
    assert logging.getLogger().level == logging.INFO


# ------------------------------------------------------------------------------ injection

INJECTING = """\
local kumo = require 'kumo'
kumo.on('smtp_server_ehlo', function(domain, conn_meta)
  local msg = kumo.make_message('robot@example.com', 'user@' .. domain,
    'Subject: made\\r\\n\\r\\nmade by policy\\r\\n')
  msg:set_meta('tenant', 'lua')
  kumo.inject_message(msg)
end)
"""


async def test_lua_make_message_and_inject_message_queue_it_without_a_reception_record(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "policy.lua", INJECTING)
    reception = await make_reception(
        policy_file=str(path), plugins=(("lua_policy", LuaPolicyPlugin()),))
    try:
        await reception.runtime.hooks.smtp_server_ehlo("dest.example", {})
        [message] = reception.messages
        assert message.recipient.email == "user@dest.example"
        assert message.meta["tenant"] == "lua"
        assert message.data.endswith(b"made by policy\r\n")
        assert len(reception.meta_spool) == 1
        assert await reception.records("Reception") == []
    finally:
        await reception.close()


async def test_python_make_message_and_inject_message() -> None:
    reception = await make_reception()
    try:
        kumo = reception.runtime.kumo
        msg = kumo.make_message("a@example.com", "b@example.net", "Subject: x\r\n\r\nbody\r\n")
        await kumo.inject_message(msg)
        assert [m.id for m in reception.messages] == [msg.id]
        with pytest.raises(Exception, match=r"expected a message from kumo\.make_message"):
            await kumo.inject_message("not a message")
    finally:
        await reception.close()
