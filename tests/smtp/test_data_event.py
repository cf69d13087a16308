"""smtp_server_data runs once per transaction, before the per-recipient messages exist:
what it changes reaches every recipient's message, and its Rejection refuses the DATA."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import kumocore_lua_policy as lua_policy  # a built-in plugin: always installed
import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore import Rejection, hookimpl
from kumocore.mail.message import Message
from kumocore.reception.smtp.server import EsmtpListener, start_esmtp_listener
from tests.reception.harness import Reception, lua_policy_listener, make_reception

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0', hostname = 'data.example',
    domains = { ['inbound.example'] = { relay_to = true } },
  }
end)
kumo.on('smtp_server_data', function(msg, conn_meta)
  if msg:get_first_named_header_value('Subject') == 'spam' then
    kumo.reject(550, '5.7.1 no spam, said smtp_server_data')
  end
  -- No trace header has been added yet: the data is what the client sent.
  msg:set_meta('had_received_header', msg:get_first_named_header_value('Received') ~= nil)
  msg:prepend_header('X-Data-Event', 'seen')
  msg:set_meta('data_event', msg:recipient_list()[1].user)
end)
kumo.on('smtp_server_message_received', function(msg, conn_meta)
  msg:set_meta('saw_data_header', msg:get_first_named_header_value('X-Data-Event'))
end)
"""


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[tuple[EsmtpListener, Reception]]:
    path = tmp_path / "policy.lua"
    path.write_text(POLICY)
    async with lua_policy_listener(path) as started:
        yield started


async def test_lua_data_event_changes_every_recipients_message(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    server, reception = listener
    client = await RawSmtpClient.connect(server.address[1], source="127.0.0.5")
    await client.read_reply()
    await client.command("EHLO client.example")
    rcpts, final = await client.send_mail(
        "a@example.com", ["one@inbound.example", "two@inbound.example"],
        "Subject: hello\r\n\r\nbody\r\n")
    assert [r.code for r in rcpts] == [250, 250] and final.code == 250
    messages = reception.messages
    assert len(messages) == 2
    for message in messages:
        assert message.meta["data_event"] == "one"  # the transaction's first recipient
        assert message.meta["had_received_header"] is False
        assert message.meta["saw_data_header"] == "seen"
        assert message.get_first_named_header_value("X-Data-Event") == "seen"
    # Meta set by smtp_server_data belongs to the transaction, not the connection.
    _, final = await client.send_mail("a@example.com", ["one@inbound.example"],
                                      "Subject: spam\r\n\r\nbody\r\n")
    assert str(final) == "550 5.7.1 no spam, said smtp_server_data"
    assert len(reception.messages) == 2


class PythonDataEvent:
    @hookimpl
    def kumo_smtp_server_data(self, message: Message) -> None:
        if b"forbidden" in message.get_data():
            raise Rejection(554, "5.6.0 forbidden content")
        message.set_meta("checked", True)


async def test_python_data_event(tmp_path: Path) -> None:
    path = tmp_path / "policy.lua"
    path.write_text(POLICY.split("kumo.on('smtp_server_data'")[0])
    reception = await make_reception(
        policy_file=str(path),
        plugins=(("lua_policy", lua_policy.LuaPolicyPlugin()), ("py", PythonDataEvent())))
    [config] = reception.runtime.config.esmtp_listeners
    server = await start_esmtp_listener(reception.runtime, config)
    try:
        client = await RawSmtpClient.connect(server.address[1], source="127.0.0.5")
        await client.read_reply()
        await client.command("EHLO client.example")
        _, final = await client.send_mail("a@example.com", ["x@inbound.example"],
                                          "Subject: a\r\n\r\nforbidden\r\n")
        assert str(final) == "554 5.6.0 forbidden content"
        _, final = await client.send_mail("a@example.com", ["x@inbound.example"],
                                          "Subject: a\r\n\r\nfine\r\n")
        assert final.code == 250
        [message] = reception.messages
        assert message.meta["checked"] is True
    finally:
        await server.close()
        await reception.close()
