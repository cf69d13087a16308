"""DKIM alignment from what ``msg:dkim_verify()`` really returns: a Lua policy signs a
message for examplecorp.com, verifies it against a real DNS server, and passes the results
to ``kumo.dmarc.check_msg`` (SPF failing, so only DKIM can align)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.mail.message import Message
from tests.plugins.lua_policy.support import DATA, Recorder, dkim_key_server, load

POLICY = """\
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
  local v = kumo.test.value()
  kumo.dns.configure_resolver { name_servers = { v.dns } }
  msg:dkim_sign(kumo.dkim.rsa_sha256_signer {
    domain = 'examplecorp.com', selector = 'sel', key = { key_data = v.key },
    headers = { 'From', 'To', 'Subject' },
  })
  local spf = { method = 'spf', result = 'fail', props = { ['smtp.mailfrom'] = 'b@esp.example' } }
  local dmarc = kumo.dmarc.check_msg(msg, msg:dkim_verify(), nil, spf, false)
  kumo.test.mark({ dmarc.disposition, dmarc.result.result, dmarc.result.reason })
end)
"""


@pytest.fixture
def dkim_dns() -> Iterator[tuple[TestDnsServer, str]]:
    with dkim_key_server() as server_and_key:
        yield server_and_key


async def run(tmp_path: Path, dkim_dns: tuple[TestDnsServer, str], data: bytes) -> list[str]:
    server, pem = dkim_dns
    recorder = Recorder()
    recorder.value = {"dns": server.address, "key": pem}
    runtime, _ = await load(tmp_path, POLICY, recorder=recorder)
    msg = Message("b@esp.example", "bob@gmail.com", data)
    await runtime.hooks.smtp_server_message_received(msg, {})
    [mark] = recorder.marks
    return list(mark)


async def test_a_valid_signature_of_the_from_domain_passes_dmarc(
    tmp_path: Path, dkim_dns: tuple[TestDnsServer, str],
) -> None:
    dkim_dns[0].set_records("_dmarc.examplecorp.com", "TXT", ["v=DMARC1; p=reject"])
    assert await run(tmp_path, dkim_dns, DATA) == ["Pass", "pass", "Success"]


async def test_strict_dkim_alignment_refuses_the_parent_domains_signature(
    tmp_path: Path, dkim_dns: tuple[TestDnsServer, str],
) -> None:
    dkim_dns[0].set_records("_dmarc.news.examplecorp.com", "TXT",
                            ["v=DMARC1; p=reject; adkim=s"])
    data = DATA.replace(b"alice@examplecorp.com", b"alice@news.examplecorp.com")
    assert await run(tmp_path, dkim_dns, data) == [
        "Reject", "fail", "DMARC: DKIM strict check failed"]


async def test_relaxed_dkim_alignment_accepts_the_parent_domains_signature(
    tmp_path: Path, dkim_dns: tuple[TestDnsServer, str],
) -> None:
    dkim_dns[0].set_records("_dmarc.examplecorp.com", "TXT",
                            ["v=DMARC1; p=reject; sp=reject"])
    data = DATA.replace(b"alice@examplecorp.com", b"alice@news.examplecorp.com")
    assert await run(tmp_path, dkim_dns, data) == ["Pass", "pass", "Success"]
