"""kumo.on: event names from the hook contract, KumoMTA's registration rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_lua_policy.events import MULTI_HANDLER_EVENTS, EventRegistry, event_specs

from kumocore import PolicyError
from kumocore.config import QueueConfig
from kumocore.mail.address import parse_envelope_address
from kumocore.mail.message import Message

from .support import DATA, Recorder, load, make_runtime, write


def test_every_non_provider_hook_is_an_event() -> None:
    specs = event_specs()
    assert "init" in specs
    assert "smtp_server_message_received" in specs
    assert "get_queue_config" in specs and specs["get_queue_config"].firstresult
    assert not any(name.startswith("register_") for name in specs)
    assert specs["get_queue_config"].argnames == ("domain", "tenant", "campaign", "routing_domain")
    assert set(specs) >= MULTI_HANDLER_EVENTS


async def test_unknown_event_fails_at_load_with_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        await load(tmp_path, """\
            local kumo = require 'kumo'
            kumo.on('smtp_server_mesage_received', function(msg) end)
        """)
    assert info.value.where == f"{tmp_path / 'policy.lua'}:2"
    assert "unknown event 'smtp_server_mesage_received'" in str(info.value)
    assert "did you mean 'smtp_server_message_received'?" in str(info.value)


async def test_split_transaction_is_an_event_of_the_contract(tmp_path: Path) -> None:
    # Refused as unsupported until kumocore made batches; now a built-in, first-result event.
    spec = event_specs()["smtp_server_split_transaction"]
    assert spec.firstresult and spec.argnames == ("message", "conn_meta")
    runtime, _ = await load(
        tmp_path, "require('kumo').on('smtp_server_split_transaction', function() end)")
    assert runtime.hooks.implemented("smtp_server_split_transaction")


async def test_handler_must_be_a_function(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="the handler must be a function"):
        await load(tmp_path, "require('kumo').on('init', { })")


async def test_last_registration_wins(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function(domain) kumo.test.mark('first ' .. domain) end)
        kumo.on('smtp_server_ehlo', function(domain) kumo.test.mark('second ' .. domain) end)
    """, recorder=recorder)
    await runtime.hooks.smtp_server_ehlo("client.example", {})
    assert recorder.marks == ["second client.example"]


async def test_get_queue_config_handlers_fall_through_on_nil(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('get_queue_config', function(domain, tenant)
          kumo.test.mark('first ' .. tostring(tenant))
          if tenant == 'vip' then
            return kumo.make_queue_config { egress_pool = 'vip-pool' }
          end
        end)
        kumo.on('get_queue_config', function(domain, tenant)
          kumo.test.mark('second ' .. tostring(tenant))
          return kumo.make_queue_config { egress_pool = 'default-pool', max_age = '1h' }
        end)
    """, recorder=recorder)
    vip = await runtime.hooks.get_queue_config("gmail.com", "vip", None, None)
    other = await runtime.hooks.get_queue_config("gmail.com", None, None, None)
    assert isinstance(vip, QueueConfig) and vip.egress_pool == "vip-pool"
    assert isinstance(other, QueueConfig) and other.egress_pool == "default-pool"
    assert other.max_age == 3600
    assert recorder.marks == ["first vip", "first nil", "second nil"]


async def test_should_enqueue_log_record_handlers_fall_through_on_nil(tmp_path: Path) -> None:
    runtime, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('should_enqueue_log_record', function(msg, hook_name)
          if hook_name == 'webhook' then return true end
        end)
        kumo.on('should_enqueue_log_record', function(msg, hook_name) return false end)
    """)
    message = Message("a@examplecorp.com", "b@gmail.com", DATA)
    assert len(policy.registry.handlers("should_enqueue_log_record")) == 2
    assert await runtime.hooks.should_enqueue_log_record(message, "webhook") is True
    assert await runtime.hooks.should_enqueue_log_record(message, "other") is False


async def test_kumomta_rcpt_to_name_is_an_alias(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_rcpt_to', function(rcpt) kumo.test.mark(rcpt.email) end)
    """, recorder=recorder)
    assert policy.events == ["smtp_server_mail_rcpt_to"]
    await runtime.hooks.smtp_server_mail_rcpt_to(parse_envelope_address("bob@gmail.com"), {})
    assert recorder.marks == ["bob@gmail.com"]


async def test_only_registered_events_get_hook_implementations(tmp_path: Path) -> None:
    runtime, policy = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('init', function() end)
        kumo.on('get_egress_path_config', function() end)
    """)
    hooks = sorted(caller.name for caller in runtime.pm.get_hookcallers(policy) or [])
    assert hooks == ["kumo_get_egress_path_config", "kumo_init"]
    assert not hasattr(policy, "kumo_smtp_server_message_received")


async def test_init_handler_gets_no_arguments(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime = make_runtime(recorder)
    await runtime.load(write(tmp_path, "policy.lua", """\
        local kumo = require 'kumo'
        kumo.on('init', function(...)
          kumo.test.mark(select('#', ...))
          kumo.define_spool { name = 'data', path = '/tmp/unused', kind = 'Memory' }
        end)
    """))
    assert recorder.marks == [0]
    assert list(runtime.config.spools) == ["data"]


async def test_a_handler_registered_inside_a_handler_of_a_handled_event_runs_from_the_next_call(
    tmp_path: Path,
) -> None:
    # KumoMTA's queue helper requires its sources helper inside validate_config; the
    # sources helper registers a validate_config handler of its own when it loads.
    recorder = Recorder()
    runtime = make_runtime(recorder)
    await runtime.load(write(tmp_path, "policy.lua", """\
        local kumo = require 'kumo'
        local added = false
        kumo.on('smtp_server_ehlo', function(domain)
          kumo.test.mark('first ' .. domain)
          if not added then
            added = true
            kumo.on('smtp_server_ehlo', function(d) kumo.test.mark('second ' .. d) end)
          end
        end)
    """))
    await runtime.hooks.smtp_server_ehlo("one", {})
    await runtime.hooks.smtp_server_ehlo("two", {})
    # Not during the call that registered it; then, as at load, the last one wins.
    assert recorder.marks == ["first one", "second two"]


async def test_registering_from_inside_a_handler_is_refused(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function()
          kumo.on('smtp_server_mail_from', function() end)
        end)
    """)
    with pytest.raises(PolicyError, match="must be called while the policy loads"):
        await runtime.hooks.smtp_server_ehlo("x", {})


def test_registry_rejects_non_string_names() -> None:
    with pytest.raises(ValueError, match="event name must be a string"):
        EventRegistry().on(42, lambda: None)


@pytest.mark.parametrize("module", ["sqlite", "redis"])
async def test_kumomtas_own_modules_are_found_before_any_file_of_the_same_name(
    tmp_path: Path, module: str
) -> None:
    # KumoMTA registers sqlite and redis before the policy runs: a file named like them
    # in the policy's directory is never loaded instead.
    (tmp_path / f"{module}.lua").write_text("error('the file was loaded')\n")
    _, policy = await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local m = require '{module}'
        kumo.on('module.kind', function() return type(m.open) end)
    """)
    assert await policy.call_custom_event("module.kind") == "function"
