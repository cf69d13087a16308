"""A Lua policy drives the listener exactly like a Python one: its init starts the
listener, and its reception events reject, set meta and end sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore.reception.smtp.server import EsmtpListener
from tests.reception.harness import Reception, lua_policy_listener

POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0',
    hostname = 'lua.example',
    domains = { ['inbound.example'] = { relay_to = true } },
  }
end)

kumo.on('smtp_server_ehlo', function(domain, conn_meta)
  if domain == 'spammer.example' then
    kumo.reject(550, '5.7.1 go away ' .. domain)
  end
  conn_meta:set_meta('x_greeted', domain)
end)

kumo.on('smtp_server_mail_rcpt_to', function(recipient, conn_meta)
  if recipient.user == 'broken' then
    error('policy bug')
  end
end)

kumo.on('smtp_server_message_received', function(msg, conn_meta)
  if msg:recipient().user == 'refused' then
    kumo.reject(554, '5.7.1 refused by lua')
  end
  msg:set_meta('tenant', conn_meta:get_meta('x_greeted'))
end)
"""


@pytest.fixture
async def lua_listener(tmp_path: Path) -> AsyncIterator[tuple[EsmtpListener, Reception]]:
    path = tmp_path / "policy.lua"
    path.write_text(POLICY)
    async with lua_policy_listener(path) as started:
        yield started


async def test_lua_policy_events_shape_the_session(
    lua_listener: tuple[EsmtpListener, Reception],
) -> None:
    listener, reception = lua_listener
    client = await RawSmtpClient.connect(listener.address[1], source="127.0.0.5")
    assert str(await client.read_reply()) == "220 lua.example kumocore ESMTP"
    assert str(await client.command("EHLO spammer.example")) == \
        "550 5.7.1 go away spammer.example"
    assert (await client.command("EHLO friend.example")).code == 250
    rcpts, final = await client.send_mail(
        "a@example.com", ["ok@inbound.example", "x@elsewhere.example"], "Subject: lua\r\n\r\n")
    assert [r.code for r in rcpts] == [250, 550]
    assert final.code == 250
    [message] = reception.messages
    assert message.meta["tenant"] == "friend.example"
    assert message.meta["x_greeted"] == "friend.example"
    _, final = await client.send_mail("a@example.com", ["refused@inbound.example"], "S: x\r\n\r\n")
    assert str(final) == "554 5.7.1 refused by lua"
    await client.command("MAIL FROM:<a@example.com>")
    reply = await client.command("RCPT TO:<broken@inbound.example>")
    assert str(reply) == "421 4.3.0 lua.example technical difficulties"
    assert await client.closed()
