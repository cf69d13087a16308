"""A policy in the style of KumoMTA's user guide, built on a helper module that lives
outside the policy's directory (found through $KUMOCORE_LUA_PATH): memoized TOML data, a
validate_config step and a make.webhook constructor. It loads, validates, serves SMTP, and
picks up a changed data file without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kumocore_lua_policy import LuaPolicyPlugin

from bench.common.smtp_client import RawSmtpClient
from kumocore.reception.smtp.server import start_esmtp_listener
from tests.reception.harness import make_reception

from .support import write

HELPER = """\
-- A helper module in the shape KumoMTA's policy-extras use: memoized data loading, a
-- validation step, a setup function returning the handler.
local kumo = require 'kumo'
local mod = {}

local load_data = kumo.memoize(function(file)
  return kumo.toml_load(file)
end, { name = 'tenant_data', ttl = '1 hour', capacity = 10, invalidate_with_epoch = true })

function mod:setup(file)
  mod.FILE = file
  return function(msg)
    local tenant = msg:get_meta('tenant') or 'default'
    local config = load_data(file).tenant[tenant]
    msg:set_meta('pool', config and config.pool or 'none')
  end
end

kumo.on('validate_config', function()
  local data = load_data(mod.FILE)
  for name, tenant in pairs(data.tenant) do
    if not tenant.pool then
      print('tenants helper: tenant ' .. name .. ' has no pool')
      kumo.validation_failed()
    end
  end
end)

return mod
"""

POLICY = """\
local kumo = require 'kumo'
local tenants = require 'policy-extras.tenants'
local apply = tenants:setup '{data}'

kumo.on('init', function()
  kumo.set_config_monitor_globs {{ '{data}' }}
  kumo.start_esmtp_listener {{
    listen = '127.0.0.1:0',
    hostname = 'helpers.example',
    relay_hosts = {{ '127.0.0.5' }},
  }}
end)

kumo.on('make.webhook', function(domain, tenant, campaign)
  return {{ url = 'http://127.0.0.1:9/' .. tenant }}
end)

kumo.on('smtp_server_message_received', function(msg)
  msg:set_meta('tenant', msg:get_first_named_header_value('X-Tenant'))
  apply(msg)
end)
"""


async def test_helper_based_policy_loads_serves_and_reloads_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = tmp_path / "share"  # not the policy's directory: found via KUMOCORE_LUA_PATH
    write(share, "policy-extras/tenants.lua", HELPER)
    monkeypatch.setenv("KUMOCORE_LUA_PATH", str(share))
    data = tmp_path / "etc" / "tenants.toml"
    data.parent.mkdir()
    data.write_text('[tenant.acme]\npool = "pool-a"\n')
    policy = write(tmp_path / "policy", "policy.lua", POLICY.format(data=data))
    plugin = LuaPolicyPlugin()
    plugin.stdlib.monitor.interval = 0.1
    reception = await make_reception(policy_file=str(policy), plugins=(("lua_policy", plugin),))
    runtime = reception.runtime
    await runtime.hooks.validate_config()
    assert not runtime.validation.failed
    lua = runtime.pm.get_plugin("policy")
    assert await lua.call_custom_event("make.webhook", "d", "acme", "c") == {
        "url": "http://127.0.0.1:9/acme"}
    [config] = runtime.config.esmtp_listeners
    listener = await start_esmtp_listener(runtime, config)
    try:
        async def send() -> str:
            client = await RawSmtpClient.connect(listener.address[1], source="127.0.0.5")
            await client.read_reply()
            await client.command("EHLO client.example")
            _, final = await client.send_mail(
                "a@example.com", ["b@example.net"], "X-Tenant: acme\r\nSubject: x\r\n\r\nhi\r\n")
            assert final.code == 250
            return str(reception.messages[-1].meta["pool"])

        assert await send() == "pool-a"
        data.write_text('[tenant.acme]\npool = "pool-b"\n')
        async with asyncio.timeout(15):
            while await send() != "pool-b":
                await asyncio.sleep(0.1)
        # and the validation step sees the new data too
        data.write_text('[tenant.acme]\nweight = 1\n')
        async with asyncio.timeout(15):
            while not runtime.validation.failed:
                await asyncio.sleep(0.1)
                await runtime.hooks.validate_config()
    finally:
        await listener.close()
        await runtime.hooks.shutdown()
        await reception.close()
