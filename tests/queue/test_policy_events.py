"""Queue and delivery events from Lua and Python policies, against the real SMTP sink:
smtp_client_rewrite_delivery_status, throttle_insert_ready_queue, requeue_message, and
spool_message_enumerated at a real server start."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from kumocore_lua_policy import LuaPolicyPlugin
from kumocore_lua_policy.policy import load_lua_policy

from kumocore import hookimpl
from kumocore.mail.message import Message
from kumocore.node.runtime import Runtime
from kumocore.node.server import Server
from kumocore.policy.plugins import register_plugin
from tests.queue.harness import Bench


async def _with_lua(bench: Bench, tmp_path: Path, source: str) -> None:
    path = tmp_path / "policy.lua"
    path.write_text(textwrap.dedent(source))
    register_plugin(bench.runtime.pm, await load_lua_policy(str(path), bench.runtime.kumo), "lua")


REWRITE = """\
    local kumo = require 'kumo'
    kumo.on('smtp_client_rewrite_delivery_status',
      function(response, domain, tenant, campaign, routing_domain)
        if response:find('^451') and domain == 'example.com' and tenant == 'acme' then
          return 500
        end
      end)
"""


async def test_lua_rewrites_a_temporary_failure_into_a_bounce(make_bench, tmp_path: Path) -> None:
    bench = await make_bench()
    await _with_lua(bench, tmp_path, REWRITE)
    await bench.inject("tempfail@example.com", queue="acme@example.com")
    [bounce] = await bench.wait_for_records("Bounce", 1)
    assert bounce["response"]["code"] == 500
    assert bounce["response"]["content"].endswith(
        "(kumomta: status was rewritten from 451 -> 500)")
    assert bench.log_sink.of_type("TransientFailure") == []
    await bench.wait_until(lambda: bench.spooled() == 0)


async def test_lua_rewrite_returning_nil_keeps_the_transient_failure(
    make_bench, tmp_path: Path
) -> None:
    bench = await make_bench()
    await _with_lua(bench, tmp_path, REWRITE)
    await bench.inject("tempfail@example.com", queue="other@example.com")
    [failure] = await bench.wait_for_records("TransientFailure", 1)
    assert failure["response"]["code"] == 451
    assert "rewritten" not in failure["response"]["content"]


class PythonRewrite:
    @hookimpl
    def kumo_smtp_client_rewrite_delivery_status(self, response: str) -> int | None:
        return 550 if response.startswith("451") else None


async def test_python_rewrite(make_bench) -> None:
    bench = await make_bench()
    register_plugin(bench.runtime.pm, PythonRewrite(), "python_rewrite")
    await bench.inject("tempfail@example.com")
    [bounce] = await bench.wait_for_records("Bounce", 1)
    assert bounce["response"]["code"] == 550


async def test_lua_throttle_insert_ready_queue_delays_what_the_throttle_refuses(
    make_bench, tmp_path: Path
) -> None:
    bench = await make_bench()
    await _with_lua(bench, tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('throttle_insert_ready_queue', function(msg)
          local t = kumo.make_throttle('tenant-' .. msg:get_meta('tenant'), '1/hour')
          t:delay_message_if_throttled(msg)
        end)
    """)
    first = await bench.inject("a@example.com", meta={"tenant": "t1"})
    second = await bench.inject("b@example.com", meta={"tenant": "t1"})
    await bench.wait_for_records("Delivery", 1)
    await asyncio.sleep(0.3)
    assert [m.recipient for m in bench.sink.messages] in (["a@example.com"], ["b@example.com"])
    delayed = second if bench.sink.messages[0].recipient == "a@example.com" else first
    due = bench.queues.scheduler.due_time(delayed.id)
    # KumoMTA re-times it within a minute (its jitter); the throttle is asked again then
    assert due is not None and due < time.time() + 60


class PythonThrottle:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def kumo_throttle_insert_ready_queue(self, message: Message) -> None:
        self.seen.append(str(message.recipient))
        if message.recipient.user == "later":
            message.set_due("2099-01-01T00:00:00Z")


async def test_python_throttle_insert_ready_queue(make_bench) -> None:
    bench = await make_bench()
    policy = PythonThrottle()
    register_plugin(bench.runtime.pm, policy, "python_throttle")
    later = await bench.inject("later@example.com")
    await bench.inject("now@example.com")
    await bench.wait_for_records("Delivery", 1)
    assert [m.recipient for m in bench.sink.messages] == ["now@example.com"]
    assert bench.queues.scheduler.due_time(later.id) is not None
    assert sorted(policy.seen) == ["later@example.com", "now@example.com"]


LUA_ENUMERATED = """\
        local kumo = require 'kumo'
        kumo.on('init', function()
          kumo.define_spool {{ name = 'data', path = '{tmp}/data', kind = 'LocalDisk' }}
          kumo.define_spool {{ name = 'meta', path = '{tmp}/meta', kind = 'LocalDisk' }}
        end)
        kumo.on('spool_message_enumerated', function(msg)
          msg:set_meta('queue', 'null')
        end)
"""

PYTHON_ENUMERATED = """\
from kumocore import hookimpl

@hookimpl
def kumo_init(kumo):
    kumo.define_spool(name="data", path="{tmp}/data", kind="LocalDisk")
    kumo.define_spool(name="meta", path="{tmp}/meta", kind="LocalDisk")

@hookimpl
def kumo_spool_message_enumerated(message):
    message.set_meta("queue", "null")
"""


@pytest.mark.parametrize("name,source", [("policy.lua", LUA_ENUMERATED),
                                         ("policy.py", PYTHON_ENUMERATED)])
async def test_spool_message_enumerated_rebinds_messages_at_start(
    tmp_path: Path, name: str, source: str
) -> None:
    policy = tmp_path / name
    policy.write_text(textwrap.dedent(source).format(tmp=tmp_path))

    async def start() -> Server:
        runtime = Runtime(load_entrypoints=False,
                          extra_plugins=(("lua_policy", LuaPolicyPlugin()),))
        await runtime.load(policy)
        server = Server(runtime)
        await server.start(listen=False)
        return server

    server = await start()
    assert server.runtime.services.store is not None
    message = Message("a@example.com", "b@example.com", b"Subject: x\r\n\r\nbody\r\n")
    await server.runtime.services.store.save(message)
    await server.stop()
    # The next start enumerates it; the policy sends it to the null queue: dropped.
    server = await start()
    try:
        assert server.runtime.services.store is not None
        ids: list[Any] = [m async for m in server.runtime.services.store.recover()]
        assert ids == []
    finally:
        await server.stop()


async def test_lua_requeue_message_rebinds_to_another_queue_and_delivers_there(
    make_bench, tmp_path: Path
) -> None:
    bench = await make_bench()
    await _with_lua(bench, tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('requeue_message',
          function(msg, smtp_response, insert_context, increment_attempts, delay)
            -- Send the retry to the other recipient's domain (a different queue).
            msg:set_recipient('rerouted@other.example')
            msg:set_meta('tenant', 'fallback')
          end)
    """)
    message = await bench.inject("tempfail@example.com")
    await bench.wait_for_records("TransientFailure", 1)
    await bench.sink.wait_for(1)
    assert [m.recipient for m in bench.sink.messages] == ["rerouted@other.example"]
    assert message.num_attempts == 1
    await bench.wait_until(lambda: bench.spooled() == 0)


class PythonRequeue:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], bool, Any]] = []

    @hookimpl
    def kumo_requeue_message(
        self, message: Message, smtp_response: str, insert_context: list[str],
        increment_attempts: bool, delay: Any,
    ) -> None:
        self.calls.append((smtp_response, insert_context, increment_attempts, delay))


async def test_python_requeue_message_sees_the_response_and_leaves_the_queue(make_bench) -> None:
    bench = await make_bench()
    policy = PythonRequeue()
    register_plugin(bench.runtime.pm, policy, "python_requeue")
    message = await bench.inject("tempfail@example.com")
    await bench.wait_for_records("TransientFailure", 1)
    await bench.wait_until(lambda: bool(policy.calls))
    [(response, context, increment, delay)] = policy.calls[:1]
    assert response.startswith("451 4.3.0") and context == ["LoggedTransientFailure"]
    assert increment is True and delay is None
    await bench.wait_until(lambda: bench.queues.scheduler.due_time(message.id) is not None)
    assert bench.queues.queue_of(message).name == "example.com"
