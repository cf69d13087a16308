"""Log hooks in process: configure_log_hook's options, the custom_lua protocol's options,
the hook message built from a record (as KumoMTA builds it), and how a sender's result
becomes a delivery response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kumocore.config import QueueConfig
from kumocore.delivery.custom_lua import LuaProtocol, Sender, lua_protocol
from kumocore.errors import ConfigError
from kumocore.loghooks.options import parse_options
from kumocore.loghooks.sink import LogHookSink
from kumocore.logs.record import RecordType
from kumocore.logs.record_builder import make_record
from kumocore.mail.message import Message
from kumocore.mail.response import Response
from tests.plugins.lua_policy.support import DATA, load


def test_log_hook_options_take_kumomta_names_and_defaults() -> None:
    config = parse_options({"name": "webhook", "headers": ["Subject"], "meta": ["tenant"],
                            "back_pressure": 10,
                            "per_record": {"Any": {"enable": False},
                                           "Delivery": {"enable": True}}})
    assert (config.name, config.headers, config.meta, config.back_pressure) == (
        "webhook", ("Subject",), ("tenant",), 10)
    assert config.wants("Delivery") and not config.wants("Reception")
    assert parse_options({"name": "x"}).back_pressure == 128_000


@pytest.mark.parametrize(("options", "says"), [
    ({}, "name is required"),
    ({"name": "x", "log_dir": "/tmp"}, "unknown option 'log_dir'"),
    ({"name": "x", "deferred_spool": True}, "deferred_spool = true is not supported"),
    ({"name": "x", "per_record": {"Delivery": {"template": "{{ id }}"}}},
     "templates are not supported"),
    ({"name": "x", "per_record": {"Nope": {}}}, "unknown record type 'Nope'"),
    ({"name": "x", "back_pressure": 0}, "back_pressure"),
])
def test_log_hook_options_refuse_what_is_wrong_or_unsupported(
    options: dict[str, Any], says: str,
) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_options(options)


def test_custom_lua_protocol_options_and_defaults() -> None:
    def config(custom: Any) -> QueueConfig:
        return QueueConfig.from_options({"protocol": {"custom_lua": custom}})

    assert lua_protocol(QueueConfig.from_options({})) is None
    assert lua_protocol(config({"constructor": "make.x"})) == LuaProtocol("make.x", 1, 1, 0.0)
    assert lua_protocol(config({"constructor": "make.x", "batch_size": 50,
                                "min_batch_size": 10, "max_batch_latency": "2s"})) == \
        LuaProtocol("make.x", 50, 10, 2.0)
    with pytest.raises(ConfigError, match="constructor"):
        lua_protocol(config({}))
    with pytest.raises(ConfigError, match="unknown option 'batch_timeout'"):
        lua_protocol(config({"constructor": "make.x", "batch_timeout": "1s"}))
    with pytest.raises(ConfigError, match="batch_size"):
        lua_protocol(config({"constructor": "make.x", "batch_size": 0}))


SENDERS = """\
    local kumo = require 'kumo'
    kumo.on('make.single', function(domain, tenant, campaign)
      local sender = {}
      function sender:send(msg)
        local rcpt = tostring(msg:recipient())
        if rcpt:find('^perm') then kumo.reject(500, 'permanently refused') end
        if rcpt:find('^temp') then kumo.reject(421, 'try later') end
        if rcpt:find('^boom') then error('the target broke') end
        return 'sent for ' .. domain .. ' ' .. tostring(tenant)
      end
      return sender
    end)
    kumo.on('make.batch', function()
      local sender = {}
      function sender:send_batch(messages) return 'batch of ' .. #messages end
      return sender
    end)
    kumo.on('make.nothing', function() return 42 end)
"""


async def test_sender_results_become_delivery_responses(tmp_path: Path) -> None:
    _, policy = await load(tmp_path, SENDERS)
    single = Sender(policy, "make.single",
                    await policy.call_custom_event("make.single", "hook.log_hook", "t", None))
    messages = [Message("a@x.test", f"{who}@y.test", DATA) for who in
                ("ok", "perm", "temp", "boom")]
    responses = await single.deliver(messages)
    assert responses[0] == Response(250, "sent for hook.log_hook t")
    assert (responses[1].code, responses[1].content) == (500, "permanently refused")
    assert responses[2].is_transient and "try later" in responses[2].content
    # As KumoMTA: a sender that raises is "error in deliver_message" (400, internal).
    assert responses[3].code == 400 and "the target broke" in responses[3].content
    assert responses[3].content.startswith("KumoMTA internal: error in deliver_message: ")

    batch = Sender(policy, "make.batch", await policy.call_custom_event("make.batch"))
    assert await batch.deliver(messages[:3]) == [Response(250, "batch of 3")] * 3

    with pytest.raises(ConfigError, match="not an object with a send or send_batch"):
        Sender(policy, "make.nothing", await policy.call_custom_event("make.nothing"))


async def test_hook_message_is_built_like_kumomta_and_routed_by_the_event(
    tmp_path: Path,
) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('should_enqueue_log_record', function(msg, hook_name)
          local record = msg:get_meta 'log_record'
          if record.type == 'Bounce' then return false end
          msg:set_meta('queue', hook_name .. '.log_hook')
          return true
        end)
    """)
    sink = LogHookSink(runtime, parse_options({"name": "hook", "meta": ["tenant"]}))
    original = Message("a@x.test", "b@y.test", DATA, meta={"tenant": "t1", "other": 1})

    def record(kind: RecordType, **extra: Any) -> Any:
        return make_record(kind, original, queue="t1@y.test", response=Response(250, "ok"),
                           nodeid="node", **extra)

    message = await sink._admit(record(RecordType.Delivery))
    assert message is not None
    assert (str(message.sender), str(message.recipient)) == ("a@x.test", "b@y.test")
    assert message.meta["reception_protocol"] == "LogRecord"
    assert message.meta["queue"] == "hook.log_hook"
    assert message.meta["tenant"] == "t1" and "other" not in message.meta
    assert message.meta["log_record"]["type"] == "Delivery"
    assert message.data.endswith(b"\n")
    assert message.meta["log_record"] == __import__("json").loads(message.data)
    assert await sink._admit(record(RecordType.Bounce)) is None  # the event said no
    # a hook delivery's own record is never hooked again (no loop)
    assert await sink._admit(record(RecordType.Delivery, reception_protocol="LogRecord")) is None
    assert sink.counts["declined"] == 1 and sink.counts["skipped"] == 1


async def test_configure_log_hook_refuses_a_second_hook_of_the_same_name(
    tmp_path: Path,
) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.configure_log_hook { name = 'dup' }
    """)
    with pytest.raises(ConfigError, match="already configured"):
        runtime.kumo.configure_log_hook(name="dup")


@pytest.mark.parametrize(("call", "says"), [
    ("log_hooks:new_json { name = 'w' }", "url is required"),
    ("log_hooks:new { name = 'w' }", "constructor is required"),
    ("log_hooks:new_json { name = 'w', url = 'http://x', bogus = 1 }", "unknown option 'bogus'"),
])
async def test_log_hooks_helper_refuses_bad_arguments_at_load(
    tmp_path: Path, call: str, says: str,
) -> None:
    with pytest.raises(Exception, match=says):
        await load(tmp_path, f"local log_hooks = require 'policy-extras.log_hooks'\n{call}\n")


async def test_custom_lua_batches_fill_to_batch_size_and_wait_for_min_batch_size() -> None:
    import time
    from types import SimpleNamespace

    from kumocore.config import EgressPathConfig, EgressSource
    from kumocore.delivery.custom_lua import LuaReadyQueue
    from kumocore.queue.egress import PathKey

    nothing_shared = SimpleNamespace(tsa=None, held_until=lambda name: 0.0,  # no delivery
                                     admin=None)
    ready = LuaReadyQueue(nothing_shared, PathKey("unspecified", "hook.log_hook", "lua:make.x"),  # type: ignore[arg-type]
                          "hook.log_hook", EgressSource.from_options({"name": "unspecified"}),
                          EgressPathConfig.from_options({}))
    ready.protocol = LuaProtocol("make.x", batch_size=5, min_batch_size=4,
                                 max_batch_latency=0.5)
    ready.wake = lambda: None  # type: ignore[method-assign]  # no connections in this test
    for index in range(7):
        ready.add(Message("a@x.test", f"r{index}@y.test", DATA))
    started = time.monotonic()
    assert len(await ready._next_batch(1.0)) == 5  # full batch at once
    assert time.monotonic() - started < 0.3
    started = time.monotonic()
    assert len(await ready._next_batch(1.0)) == 2  # under min_batch_size: waited the latency
    assert 0.4 < time.monotonic() - started < 3
    ready.protocol = LuaProtocol("make.x", batch_size=5, min_batch_size=1)
    for index in range(2):
        ready.add(Message("a@x.test", f"s{index}@y.test", DATA))
    started = time.monotonic()
    assert len(await ready._next_batch(1.0)) == 2  # min 1, no latency: what is there
    assert time.monotonic() - started < 0.3
    assert await ready._next_batch(0.1) == []  # idle: nothing came


async def test_an_aborted_custom_lua_connection_puts_back_only_messages_not_yet_handled() -> None:
    # The first body cannot be read (handled: a transient failure), the second load is
    # cut by an abort of the connection: only the messages not handled go back, once.
    import asyncio
    from types import SimpleNamespace

    from kumocore.config import EgressPathConfig, EgressSource
    from kumocore.delivery.custom_lua import LuaReadyQueue
    from kumocore.queue.egress import PathKey

    handled: list[str] = []
    loading = asyncio.Event()

    async def load_data(message: Message) -> bytes:
        if str(message.recipient).startswith("r0"):
            raise OSError("spool read error")
        loading.set()
        await asyncio.Event().wait()  # the abort comes while this body is read
        return DATA

    shared = SimpleNamespace(
        tsa=None, held_until=lambda name: 0.0, load_data=load_data, admin=None,
        outcomes=SimpleNamespace(handle=lambda path, message, response, peer, **_: handled.append(
            str(message.recipient))))  # fmt: skip
    ready = LuaReadyQueue(shared, PathKey("unspecified", "hook.log_hook", "lua:make.x"),  # type: ignore[arg-type]
                          "hook.log_hook", EgressSource.from_options({"name": "unspecified"}),
                          EgressPathConfig.from_options({}))
    ready.protocol = LuaProtocol("make.x", batch_size=3, min_batch_size=1)
    ready.wake = lambda: None  # type: ignore[method-assign]  # no connections of its own
    for index in range(3):
        message = Message("a@x.test", f"r{index}@y.test", DATA)
        message.release_data()  # in the spool only: the connection loads it
        ready.add(message)
    sender = SimpleNamespace(deliver=None)  # never reached
    task = asyncio.create_task(ready._deliver_batches(sender, None))  # type: ignore[arg-type]
    await asyncio.wait_for(loading.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert handled == ["r0@y.test"]
    assert [str(m.recipient) for m in ready.messages] == ["r1@y.test", "r2@y.test"]
