"""``kumo.configure_log_disposition_hook`` and ``log_hooks:new_disposition_hook`` in
process: KumoMTA's options, the refusals (unknown key, duplicate name, no handler) and
which records reach the handler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kumocore import hookimpl
from kumocore.errors import ConfigError
from kumocore.loghooks.disposition import DispositionHookSink, parse_disposition_options
from kumocore.loghooks.policy_dispositions import PolicyDispositions
from kumocore.logs.record import RecordType
from kumocore.logs.record_builder import make_record
from kumocore.mail.message import Message
from kumocore.mail.response import Response
from kumocore.node.runtime import Runtime
from kumocore.queue.queued import Queued
from tests.plugins.lua_policy.support import load
from tests.support.wiring import wire

HOOKED = """
local kumo = require 'kumo'
local log_hooks = require 'policy-extras.log_hooks'
log_hooks:new_disposition_hook { name = 'x', hook = function(msg, log_record) end }
"""


def test_options_take_name_and_per_record() -> None:
    config = parse_disposition_options(
        {"name": "ndr", "per_record": {"Any": {"enable": False}, "Bounce": {"enable": True}}})
    assert config.event == "log_disposition_ndr"
    assert config.wants("Bounce") and not config.wants("Delivery")
    assert parse_disposition_options({"name": "ndr"}).wants("Expiration")


@pytest.mark.parametrize(("options", "says"), [
    ({}, "name is required"),
    ({"name": "x", "headers": ["Subject"]}, "unknown option 'headers'"),
    ({"name": "x", "per_record": {"Nope": {}}},
     "configure_log_disposition_hook: per_record.Nope: unknown record type"),
])
def test_options_refuse_what_kumomta_refuses(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_disposition_options(options)


async def test_helper_registers_the_event_and_configures_the_hook_in_pre_init(
    tmp_path: Path,
) -> None:
    runtime, policy = await load(tmp_path, HOOKED)
    assert policy.has_custom_event("log_disposition_x")  # a short name is no typo
    await runtime.hooks.pre_init(runtime.kumo)
    [sink] = [s for s in runtime.hooks.log_sinks() if s.name == "log_disposition:x"]
    assert sink.config.name == "x"
    with pytest.raises(ConfigError, match="a hook named 'x' is already configured"):
        runtime.kumo.configure_log_disposition_hook(name="x")


async def test_a_hook_nothing_handles_is_refused_naming_the_event(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, "local kumo = require 'kumo'\n")
    with pytest.raises(ConfigError, match=r"register kumo.on\('log_disposition_ndr'"):
        runtime.kumo.configure_log_disposition_hook(name="ndr")


@pytest.mark.parametrize(("options", "says"), [
    ("{ name = 'x' }", "hook is required"),
    ("{ name = 'x', hook = function() end, filter = 1 }", "unknown option 'filter'"),
])
async def test_helper_refuses_bad_options(tmp_path: Path, options: str, says: str) -> None:
    source = ("local log_hooks = require 'policy-extras.log_hooks'\n"
              f"log_hooks:new_disposition_hook {options}\n")
    with pytest.raises(Exception, match=says):
        await load(tmp_path, source)


class Handler:
    """A Python plugin implementing the hook: what it saw, and a failure on demand."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    @hookimpl
    async def kumo_log_disposition(self, hook_name: str, message: Message,
                                   log_record: dict[str, Any]) -> None:
        self.seen.append((hook_name, message.id, log_record["type"]))
        if log_record["recipient"].startswith("boom"):
            raise RuntimeError("handler failed")


async def test_sink_hands_over_records_of_queued_messages_only() -> None:
    handler = Handler()
    runtime = Runtime(load_entrypoints=False, extra_plugins=(("handler", handler),))
    wire(runtime)
    assert runtime.services.queues is not None
    config = parse_disposition_options(
        {"name": "ndr", "per_record": {"Delivery": {"enable": False}}})
    sink = DispositionHookSink(PolicyDispositions(runtime), config)
    sink.check_handlers()  # the Python hook counts as a handler
    queued = Message("a@x.example", "b@y.example", b"Subject: s\r\n\r\nbody\r\n")
    failing = Message("a@x.example", "boom@y.example", b"Subject: s\r\n\r\nbody\r\n")
    hooked = Message("a@x.example", "c@y.example", b"{}\n",
                     meta={"reception_protocol": "LogRecord"})
    for message in (queued, failing, hooked):
        runtime.services.queues.queued[message.id] = Queued(message, None)
    gone = Message("a@x.example", "d@y.example", b"x")  # no longer owned by the queue

    def record(kind: RecordType, message: Message) -> Any:
        return make_record(kind, message, queue="y.example",
                           response=Response(550, "5.1.1 no"), nodeid="n")

    await sink.write_batch([
        record(RecordType.Bounce, queued), record(RecordType.Delivery, queued),
        record(RecordType.Bounce, failing), record(RecordType.Bounce, hooked),
        record(RecordType.Expiration, gone)])
    assert sorted(handler.seen) == sorted([("ndr", queued.id, "Bounce"),
                                           ("ndr", failing.id, "Bounce")])
    assert sink.counts == {"called": 1, "skipped": 3, "errors": 1}
