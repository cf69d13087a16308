"""``policy-extras.mail_auth`` and the Lua side of ``msg:arc_verify``/``msg:arc_seal``, run
by the Lua policy engine against a real DNS server (no server process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.mail.message import Message
from tests.core.arc.conftest import MESSAGE
from tests.plugins.lua_policy.support import Recorder, load

ZONES: dict[str, dict[str, Any]] = {
    "sender.example": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
    "1.2.0.192.in-addr.arpa": {"PTR": ["mail.sender.example."]},
    "mail.sender.example": {"A": ["192.0.2.1"]},
    "2.2.0.192.in-addr.arpa": {"PTR": ["elsewhere.example."]},
    "elsewhere.example": {"A": ["198.51.100.7"]},
}


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with TestDnsServer(ZONES) as server:
        yield server


async def run(tmp_path: Path, dns: TestDnsServer, body: str,
              ip: str = "192.0.2.1") -> tuple[list[Any], Message]:
    recorder = Recorder()
    recorder.value = {"dns": dns.address}
    runtime, _ = await load(tmp_path, f"""\
local kumo = require 'kumo'
local mail_auth = require 'policy-extras.mail_auth'
kumo.on('smtp_server_message_received', function(msg)
  kumo.dns.configure_resolver {{ name_servers = {{ kumo.test.value().dns }} }}
{body}
end)
""", recorder=recorder)
    msg = Message("bob@sender.example", "list@lists.example", MESSAGE)
    msg.set_meta("received_from", f"{ip}:25000")
    msg.set_meta("hostname", "mx.test.example")
    await runtime.hooks.smtp_server_message_received(msg, {})
    return recorder.marks, msg


async def test_check_collects_results_in_kumomtas_order_and_stamps_the_header(
    tmp_path: Path, dns: TestDnsServer,
) -> None:
    marks, msg = await run(tmp_path, dns, """\
  local r = mail_auth.check(msg)
  local methods = {}
  for _, ar in ipairs(r.auth_results) do table.insert(methods, ar.method .. '=' .. ar.result) end
  kumo.test.mark(methods)
  kumo.test.mark({ r.dkim[1].reason, r.iprev.reason, r.smtp_auth.props['smtp.mailfrom'] })
""")
    assert marks == [
        ["dkim=none", "spf=pass", "iprev=pass", "auth=none", "dmarc=permerror", "arc=none"],
        ["message was not signed", "ip 192.0.2.1 <-> mail.sender.example.",
         "bob@sender.example"],
    ]
    header = msg.get_first_named_header_value("Authentication-Results")
    assert header is not None and header.startswith("mx.test.example;")
    assert "arc=none" in header


async def test_disabled_checks_are_absent_and_no_header_is_added_on_request(
    tmp_path: Path, dns: TestDnsServer,
) -> None:
    marks, msg = await run(tmp_path, dns, """\
  local r = mail_auth.check(msg, { dkim = false, iprev = false, arc = false,
                                   add_auth_results_header = false })
  kumo.test.mark({ r.dkim == nil, r.iprev == nil, r.arc == nil, r.dmarc == nil,
                   r.spf.result, #r.auth_results })
""")
    assert marks == [[True, True, True, True, "pass", 2]]  # dmarc needs dkim: skipped too
    assert msg.get_first_named_header_value("Authentication-Results") is None


async def test_iprev_fails_when_the_ptr_name_does_not_lead_back(
    tmp_path: Path, dns: TestDnsServer,
) -> None:
    marks, _ = await run(tmp_path, dns, """\
  local bad = mail_auth.iprev('192.0.2.2')
  local none = mail_auth.iprev('192.0.2.99')
  kumo.test.mark({ bad.result, bad.props['smtp.remote-ip'], none.result, none.reason })
""")
    assert marks == [["fail", "192.0.2.2", "permerror", "ip 192.0.2.99 has no PTR"]]


async def test_an_unknown_or_mistyped_option_is_refused(
    tmp_path: Path, dns: TestDnsServer,
) -> None:
    marks, _ = await run(tmp_path, dns, """\
  local ok, err = pcall(mail_auth.check, msg, { dkim_verify = true })
  kumo.test.mark(tostring(err):match('unknown option dkim_verify') ~= nil)
  ok, err = pcall(mail_auth.check, msg, { spf = 'yes' })
  kumo.test.mark(tostring(err):match('spf must be a boolean') ~= nil)
""")
    assert marks == [True, True]


async def test_lua_arc_seal_with_check_results_then_arc_verify_passes(
    tmp_path: Path, dns: TestDnsServer,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from kumocore.dkim import public_key_record

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dns.set_records("arc._domainkey.test.example", "TXT", [public_key_record(key)])
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    marks, msg = await run(tmp_path, dns, f"""\
  local r = mail_auth.check(msg)
  local signer = kumo.dkim.rsa_sha256_signer {{
    domain = 'test.example', selector = 'arc', headers = {{ 'From', 'Subject' }},
    key = {{ key_data = [[{pem}]] }},
  }}
  msg:arc_seal(signer, 'mx.test.example', r.auth_results)
  local arc = msg:arc_verify()
  kumo.test.mark({{ arc.method, arc.result, arc.props['header.oldest-pass'] }})
""")
    assert marks == [["arc", "pass", "0"]]
    aar = msg.get_first_named_header_value("ARC-Authentication-Results")
    assert aar is not None and aar.startswith("i=1; mx.test.example;")
    assert "spf=pass" in aar and "iprev=pass" in aar
