"""End to end on a real ``kumocore serve``: a Lua policy runs ``msg:dkim_verify()``,
``kumo.spf.check_msg`` and ``kumo.dmarc.check_msg`` at reception, rejects a DMARC
``p=reject`` failure with a 550, and stamps accepted mail with the results and the
``kumo.string.psl_domain`` of its From domain (client on 127.0.0.5)."""

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

kumo.on('smtp_server_message_received', function(msg, conn_meta)
  local dkim = msg:dkim_verify()
  local spf = kumo.spf.check_msg(msg)
  local dmarc = kumo.dmarc.check_msg(msg, dkim, nil, spf.result, false)
  if dmarc.disposition == 'Reject' then
    kumo.reject(550, '5.7.1 DMARC policy of the From domain: ' .. dmarc.result.reason)
  end
  msg:append_header('X-DMARC-Disposition', dmarc.disposition)
  msg:append_header('X-From-Org', kumo.string.psl_domain(msg:from_header().domain))
  msg:add_authentication_results(msg:get_meta 'hostname', {{ spf.result, dmarc.result }})
end)
'''

POLICY += ROUTE_TO_SINK_LUA


@pytest.fixture
def world() -> Iterator[TestDnsServer]:
    zones: dict[str, dict[str, Any]] = {
        # An ESP's bounce domain: SPF passes for it, but it is not aligned with the From.
        "esp.example": {"TXT": ["v=spf1 ip4:127.0.0.5 -all"]},
        "_dmarc.strict-brand.example": {"TXT": ["v=DMARC1; p=reject; rua=mailto:d@x.example"]},
        # The sender's own bounce domain; the record is found at the organizational domain.
        "brand.example": {"TXT": ["v=spf1 ip4:127.0.0.5 -all"]},
        "_dmarc.brand.example": {"TXT": ["v=DMARC1; p=reject"]},
        "dest.example": {"MX": [(10, "mx.dest.example")]},
        "mx.dest.example": {"A": ["127.0.0.1"]},
    }
    with TestDnsServer(zones) as server:
        yield server


async def test_lua_policy_rejects_a_dmarc_reject_failure_and_stamps_a_pass(
    tmp_path: Path, world: TestDnsServer, sink: RecordingSink,
) -> None:
    async with serving(tmp_path, POLICY, world, sink) as smtp_port:
        client = await RawSmtpClient.connect(smtp_port, source="127.0.0.5")
        await client.read_reply()
        assert (await client.command("EHLO client.test")).code == 250

        _, final = await client.send_mail(
            "bounce@esp.example", ["user@dest.example"],
            "From: Brand <news@strict-brand.example>\r\nSubject: dmarc\r\n\r\nbody\r\n")
        assert str(final) == (
            "550 5.7.1 DMARC policy of the From domain: DMARC: SPF relaxed check failed")
        _, final = await client.send_mail(
            "bounce@brand.example", ["user@dest.example"],
            "From: Brand <news@Mail.Brand.example>\r\nSubject: dmarc\r\n\r\nbody\r\n")
        assert final.code == 250, str(final)
        await client.close()

        async def delivered() -> bool:
            return bool(sink.messages)

        await wait_for(delivered, 30, "the aligned message at the sink")
    [message] = sink.messages
    assert message.sender == "bounce@brand.example"
    head = message.data.split(b"\r\n\r\n", 1)[0].decode()
    assert "X-DMARC-Disposition: Pass" in head
    assert "X-From-Org: brand.example" in head
    assert "Authentication-Results: mx.receiver.example;" in head
    assert "spf=pass" in head
    assert "dmarc=pass reason=Success\r\n\tpolicy.p=reject" in head
