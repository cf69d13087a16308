"""End to end on a real ``kumocore serve``: a Lua policy runs ``policy-extras.mail_auth``'s
``check`` at reception and seals the result with ``msg:arc_seal``. The client (127.0.0.5)
sends a DKIM-signed message that an earlier hop already ARC-sealed; the DNS server
publishes the DKIM, SPF, DMARC, PTR/A and both hops' ARC keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from bench.common.smtp_client import RawSmtpClient
from kumocore.dkim import Signer, public_key_record
from kumocore.dkim.arc import arc_verify
from kumocore.mail.message import Message
from tests.core.arc.conftest import MESSAGE
from tests.core.spf.conftest import ROUTE_TO_SINK_LUA, listener_init_lua, serving, sink
from tests.loghooks.test_webhook_durability import wait_for
from tests.plugins.lua_policy.support import make_runtime

__all__ = ["sink"]

pytestmark = pytest.mark.slow

POLICY = '''
local kumo = require 'kumo'
local mail_auth = require 'policy-extras.mail_auth'

'''
POLICY += listener_init_lua('mx.relay.example')
POLICY += '''

kumo.on('smtp_server_message_received', function(msg, conn_meta)
  local checked = mail_auth.check(msg)
  msg:append_header('X-Checked', checked.dkim[1].result .. ' ' .. checked.spf.result .. ' '
    .. checked.iprev.result .. ' ' .. checked.smtp_auth.result .. ' '
    .. checked.dmarc.result .. ' ' .. checked.arc.result .. ' ' .. #checked.auth_results)
  local signer = kumo.dkim.rsa_sha256_signer {{
    domain = 'relay.example', selector = 'arc', key = '{key}',
    headers = {{ 'From', 'To', 'Subject', 'X-Checked' }},
  }}
  msg:arc_seal(signer, msg:get_meta 'hostname', checked.auth_results)
end)
'''

POLICY += ROUTE_TO_SINK_LUA


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestDnsServer, Path, bytes]]:
    """The DNS server, the relay's ARC key file, and the message as the client sends it."""
    author, forwarder, relay = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                                for _ in range(3))
    key_file = tmp_path / "relay-arc.pem"
    key_file.write_bytes(_pem(relay))
    zones: dict[str, dict[str, Any]] = {
        "sender.example": {"TXT": ["v=spf1 ip4:127.0.0.5 -all"]},
        "_dmarc.sender.example": {"TXT": ["v=DMARC1; p=reject"]},
        "s1._domainkey.sender.example": {"TXT": [public_key_record(author)]},
        "arc._domainkey.forward.example": {"TXT": [public_key_record(forwarder)]},
        "arc._domainkey.relay.example": {"TXT": [public_key_record(relay)]},
        "5.0.0.127.in-addr.arpa": {"PTR": ["client.sender.example."]},
        "client.sender.example": {"A": ["127.0.0.5"]},
        "lists.example": {"MX": [(10, "mx.lists.example")]},
        "mx.lists.example": {"A": ["127.0.0.1"]},
    }
    with TestDnsServer(zones) as server:
        yield server, key_file, _pem(author) + b"\0" + _pem(forwarder)


async def client_message(server: TestDnsServer, pems: bytes) -> bytes:
    """DKIM-signed by its author, then ARC-sealed once by forward.example."""
    author_pem, forwarder_pem = pems.split(b"\0")
    make_runtime().kumo.dns.configure_resolver(name_servers=[server.address])
    msg = Message("alice@sender.example", "list@lists.example", MESSAGE)
    msg.dkim_sign(Signer("sender.example", "s1", ("From", "To", "Subject"),
                         key_data=author_pem))
    await msg.arc_seal(Signer("forward.example", "arc", ("From", "To", "Subject"),
                              key_data=forwarder_pem), "mx.forward.example", [])
    return msg.get_data()


async def test_mail_auth_check_stamps_results_and_arc_seal_extends_the_chain(
    tmp_path: Path, world: tuple[TestDnsServer, Path, bytes], sink: RecordingSink,
) -> None:
    server, key_file, pems = world
    data = await client_message(server, pems)
    async with serving(tmp_path, POLICY, server, sink, key=key_file) as smtp_port:
        client = await RawSmtpClient.connect(smtp_port, source="127.0.0.5")
        await client.read_reply()
        assert (await client.command("EHLO client.sender.example")).code == 250
        _, final = await client.send_mail("alice@sender.example", ["list@lists.example"], data)
        assert final.code == 250, str(final)
        await client.close()

        async def delivered() -> bool:
            return bool(sink.messages)

        await wait_for(delivered, 30, "the sealed message at the sink")
    [message] = sink.messages
    head = message.data.split(b"\r\n\r\n", 1)[0].decode()
    assert "X-Checked: pass pass pass none pass pass 6" in head
    auth_results = head.split("Authentication-Results: mx.relay.example;", 1)[1]
    for stamp in ("dkim=pass", "spf=pass", "iprev=pass reason=\"ip 127.0.0.5 <-> "
                  "client.sender.example.\"", "auth=none", "dmarc=pass", "arc=pass"):
        assert stamp in auth_results
    # The relay's set is on top of what it received (only kumocore's X-KumoRef is above).
    assert "\r\nARC-Authentication-Results: i=2; mx.relay.example;" in head
    # The delivered chain validates, here and with dkimpy's independent validator.
    make_runtime().kumo.dns.configure_resolver(name_servers=[server.address])
    assert (await arc_verify(message.data))["result"] == "pass"
    def txt(name: bytes, timeout: int = 5) -> bytes:
        """dkimpy's key lookup, asking the same DNS server."""
        res = dns.resolver.Resolver(configure=False)
        host, _, port = server.address.rpartition(":")
        res.nameservers, res.port = [host], int(port)
        return b"".join(res.resolve(name.decode(), "TXT")[0].strings)

    cv, _, comment = dkim.arc_verify(message.data, dnsfunc=txt)
    assert (cv, comment) == (b"pass", "success")
