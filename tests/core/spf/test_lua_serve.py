"""End to end on a real ``kumocore serve``: a Lua policy checks SPF with
``kumo.spf.check_host`` at EHLO and MAIL FROM and ``kumo.spf.check_msg`` at reception,
rejects ``fail`` with a 550 and stamps the result on accepted mail (client on 127.0.0.5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from bench.common.smtp_client import RawSmtpClient
from tests.core.spf.conftest import ROUTE_TO_SINK_LUA, listener_init_lua, serving
from tests.loghooks.test_webhook_durability import wait_for

pytestmark = pytest.mark.slow

POLICY = '''
local kumo = require 'kumo'

'''
POLICY += listener_init_lua('mx.receiver.example')
POLICY += '''

kumo.on('smtp_server_ehlo', function(domain, conn_meta)
  local spf = kumo.spf.check_host(domain, conn_meta)
  if spf.disposition == 'fail' then
    kumo.reject(550, '5.7.1 SPF EHLO check failed: ' .. spf.result.reason)
  end
end)

kumo.on('smtp_server_mail_from', function(sender, conn_meta)
  local spf = kumo.spf.check_host(sender.domain, conn_meta, tostring(sender))
  conn_meta:set_meta('spf_mail_from', spf.disposition .. ' ' .. spf.result.props['smtp.mailfrom'])
end)

kumo.on('smtp_server_message_received', function(msg, conn_meta)
  msg:append_header('X-SPF-Mail-From', conn_meta:get_meta 'spf_mail_from')
  local spf = kumo.spf.check_msg(msg)
  if spf.disposition == 'fail' then
    kumo.reject(550, '5.7.1 SPF check failed: ' .. spf.result.reason)
  end
  msg:add_authentication_results(msg:get_meta 'hostname', {{ spf.result }})
end)
'''

POLICY += ROUTE_TO_SINK_LUA


@pytest.fixture
def world() -> Iterator[TestDnsServer]:
    zones: dict[str, dict[str, Any]] = {
        "denied.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all exp=why.denied.example"]},
        "why.denied.example": {"TXT": ["%{i} may not send mail for %{d}"]},
        "allowed.example": {"TXT": ["v=spf1 a:out.allowed.example -all"]},
        "out.allowed.example": {"A": ["127.0.0.5"]},
        "bad-helo.example": {"TXT": ["v=spf1 -all"]},
        "dest.example": {"MX": [(10, "mx.dest.example")]},
        "mx.dest.example": {"A": ["127.0.0.1"]},
    }
    with TestDnsServer(zones) as server:
        yield server


async def test_lua_policy_rejects_spf_fail_with_550_and_stamps_passes(
    tmp_path: Path, world: TestDnsServer, sink: RecordingSink,
) -> None:
    async with serving(tmp_path, POLICY, world, sink) as smtp_port:
        client = await RawSmtpClient.connect(smtp_port, source="127.0.0.5")
        await client.read_reply()
        refused = await client.command("EHLO bad-helo.example")
        assert str(refused) == (
            "550 5.7.1 SPF EHLO check failed: matched '-all' directive")
        assert (await client.command("EHLO client.test")).code == 250  # no SPF: none

        _, final = await client.send_mail("joe@denied.example", ["user@dest.example"],
                                          "Subject: spf\r\n\r\nbody\r\n")
        assert str(final) == (
            "550 5.7.1 SPF check failed: 127.0.0.5 may not send mail for denied.example")
        _, final = await client.send_mail("joe@allowed.example", ["user@dest.example"],
                                          "Subject: spf\r\n\r\nbody\r\n")
        assert final.code == 250, str(final)
        await client.close()

        async def delivered() -> bool:
            return bool(sink.messages)

        await wait_for(delivered, 30, "the allowed message at the sink")
    [message] = sink.messages
    assert message.sender == "joe@allowed.example"
    head = message.data.split(b"\r\n\r\n", 1)[0].decode()
    assert "Authentication-Results: mx.receiver.example;" in head
    assert "spf=pass" in head
    assert "smtp.mailfrom=joe@allowed.example" in head
    assert "smtp.helo=client.test" in head
    assert "X-SPF-Mail-From: pass joe@allowed.example" in head
