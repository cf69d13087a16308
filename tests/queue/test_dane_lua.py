"""DANE from a Lua policy on a real ``kumocore serve``: the resolver is marked validating
with ``configure_resolver { options = { validate = true } }``, paths ask for
``enable_dane``, and the local logs show a DANE-authenticated Delivery for the domain whose
TLSA record matches and a deferral for the one whose record does not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from bench.common.dns_server import TestDnsServer
from bench.common.serve_process import ServeProcess, free_port
from bench.common.sink import RecordingSink
from bench.common.smtp_client import RawSmtpClient
from kumocore.logs.reader import iter_records
from tests.loghooks.test_webhook_durability import wait_for
from tests.support.dane import association, leaf_cert, server_context

pytestmark = pytest.mark.slow

POLICY = '''
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.dns.configure_resolver {{
    name_servers = {{ '{dns}' }},
    options = {{ validate = true }},
  }}
  kumo.define_spool {{ name = 'data', path = '{spool}/data' }}
  kumo.define_spool {{ name = 'meta', path = '{spool}/meta' }}
  kumo.configure_local_logs {{ log_dir = '{logs}' }}
  kumo.start_esmtp_listener {{ listen = '127.0.0.1:{smtp_port}', relay_hosts = {{ '127.0.0.1' }} }}
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config {{ retry_interval = '1h' }}
end)

kumo.on('get_egress_path_config', function(domain, egress_source, site_name)
  return kumo.make_egress_path {{
    enable_dane = true,
    smtp_port = {sink_port},
    prohibited_hosts = {{}},
  }}
end)
'''


@pytest.fixture
async def tls_sink() -> AsyncIterator[tuple[RecordingSink, trustme.LeafCert]]:
    ca = trustme.CA()
    leaf = ca.issue_cert("mx.good.example", "mx.bad.example")
    async with RecordingSink(tls_context=server_context(leaf, ca)) as sink:
        yield sink, leaf


@pytest.fixture
def world(tls_sink: tuple[RecordingSink, trustme.LeafCert]) -> Iterator[TestDnsServer]:
    sink, leaf = tls_sink
    zones: dict[str, dict[str, Any]] = {}
    for name, data in (("good", association(leaf_cert(leaf), 1, 1)), ("bad", "cd" * 32)):
        zones[f"{name}.example"] = {"MX": [(10, f"mx.{name}.example")], "SECURE": True}
        zones[f"mx.{name}.example"] = {"A": ["127.0.0.1"], "SECURE": True}
        zones[f"_{sink.port}._tcp.mx.{name}.example"] = {"TLSA": [(3, 1, 1, data)],
                                                         "SECURE": True}
    with TestDnsServer(zones) as server:
        yield server


async def test_lua_policy_delivers_with_dane_and_defers_a_mismatching_mx(
    tmp_path: Path, world: TestDnsServer, tls_sink: tuple[RecordingSink, trustme.LeafCert],
) -> None:
    sink, _ = tls_sink
    smtp_port, logs = free_port(), tmp_path / "logs"
    policy = tmp_path / "policy.lua"
    policy.write_text(POLICY.format(dns=world.address, spool=tmp_path / "spool", logs=logs,
                                    smtp_port=smtp_port, sink_port=sink.port))
    kumo = ServeProcess(policy, tmp_path / "kumocore.log")
    kumo.start()
    try:
        await kumo.wait_for_smtp(smtp_port)
        client = await RawSmtpClient.connect(smtp_port)
        await client.hello()
        for rcpt in ("user@good.example", "user@bad.example"):
            _, final = await client.send_mail("sender@src.test", [rcpt],
                                              "Subject: dane\r\n\r\nbody\r\n")
            assert final.code == 250, str(final)
        await client.close()

        def records(kind: str) -> list[dict[str, Any]]:
            return [r for r in iter_records(logs) if r["type"] == kind]

        async def settled() -> bool:
            return bool(records("Delivery")) and bool(records("TransientFailure"))

        await wait_for(settled, 60, "a Delivery and a TransientFailure")
    finally:
        kumo.stop()
    [delivery] = records("Delivery")
    assert delivery["recipient"] == "user@good.example"
    assert delivery["peer_address"]["is_secure"] is True and delivery["tls_cipher"]
    assert [m.recipient for m in sink.messages] == ["user@good.example"]
    assert sink.messages[0].tls
    deferred = records("TransientFailure")[0]
    assert deferred["recipient"] == "user@bad.example"
    assert f"DANE: no TLSA record of _{sink.port}._tcp.mx.bad.example" in \
        deferred["response"]["content"]
