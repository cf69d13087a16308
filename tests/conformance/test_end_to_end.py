"""The reference policy end to end: SMTP/HTTP in, shaped delivery out, logs on disk.

The seed policy runs with only its literals changed (see reference_policy.py). A real DNS
server answers for gmail.com, yahoo.com, outlook.com, comcast.net and examplecorp.com
(every MX host is 127.0.0.1), and a recording sink on 127.0.0.1 receives what kumocore
delivers from its egress sources 127.0.10.N.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import smtplib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import dkim
import pytest

from bench.common.dns_server import TestDnsServer, reference_zones
from bench.common.sink import RecordingSink
from kumocore.logs.reader import iter_records
from kumocore.node.runtime import Runtime
from kumocore.node.server import Server
from tests.conformance.reference_policy import (
    ReferencePolicy,
    bounce_rules_path,
    dkim_record,
    missing_requirements,
    prepare_reference_policy,
    seed_path,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(seed_path() is None, reason="../shared/seed/example-policy.lua is absent"),
]

TENANT_ONE_SOURCES = {"127.0.10.3": "mta1.examplecorp.com", "127.0.10.4": "mta4.examplecorp.com",
                      "127.0.10.5": "mta5.examplecorp.com"}


@dataclass
class Deployment:
    ref: ReferencePolicy
    dns: TestDnsServer
    sink: RecordingSink
    server: Server

    def send(self, recipient: str, *, tenant: str | None = "TenantOne", count: int = 1,
             subject: str = "hello", source: str = "127.0.0.1") -> None:
        """Send ``count`` messages over one SMTP session (blocking: run in a thread)."""
        with smtplib.SMTP("127.0.0.1", self.ref.smtp_port, source_address=(source, 0),
                          timeout=30) as client:
            for n in range(count):
                tenant_header = f"X-Tenant: {tenant}\r\n" if tenant else ""
                body = (f"From: Sender <sender@examplecorp.com>\r\nTo: <{recipient}>\r\n"
                        f"Subject: {subject} {n}\r\n{tenant_header}\r\nbody {n}\r\n")
                client.sendmail("sender@examplecorp.com", [recipient], body.encode())

    def records(self, kind: str) -> list[dict[str, Any]]:
        if not self.ref.log_dir.exists():
            return []
        return [r for r in iter_records(self.ref.log_dir) if r["type"] == kind]


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    missing = missing_requirements()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    zones = reference_zones(mx_address="127.0.0.1")
    with TestDnsServer(zones) as dns:
        ref = prepare_reference_policy(tmp_path, dns_address=dns.address,
                                       bounce_rules=bounce_rules_path(tmp_path))
        name, value = dkim_record(ref)
        dns.set_records(name, "TXT", [value])
        sink = await RecordingSink(port=ref.sink_port).start()
        runtime = Runtime()
        await runtime.load(ref.wrapper)
        server = Server(runtime)
        await server.start()
        try:
            yield Deployment(ref, dns, sink, server)
        finally:
            await server.stop(timeout=3)
            await sink.stop()


def _dns_for(deployment: Deployment) -> Any:
    name, value = dkim_record(deployment.ref)

    def lookup(qname: bytes, timeout: int = 5) -> bytes:
        return value.encode() if qname.decode().rstrip(".") == name else b""

    return lookup


async def test_tenant_one_mail_leaves_dkim_signed_from_the_tenant_pool(deployment) -> None:
    await asyncio.to_thread(deployment.send, "someone@gmail.com", count=6)
    messages = await deployment.sink.wait_for(6, timeout=20)
    for received in messages:
        assert TENANT_ONE_SOURCES[received.source_ip] == received.ehlo
        assert b"d=examplecorp.com" in received.data and b"s=dkim1024" in received.data
        assert dkim.verify(received.data, dnsfunc=_dns_for(deployment))
    assert {m.source_ip for m in messages} == set(TENANT_ONE_SOURCES)


async def test_mail_without_a_known_tenant_is_refused_before_acknowledgement(deployment) -> None:
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(deployment.send, "someone@gmail.com", tenant=None)
    assert info.value.smtp_code == 421
    assert b"4.3.0" in info.value.smtp_error


async def test_relaying_is_denied_to_untrusted_peers(deployment) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        await asyncio.to_thread(deployment.send, "someone@gmail.com", source="127.0.0.5")
    (code, text), = info.value.recipients.values()
    assert code == 550 and b"5.7.1" in text


async def test_relay_to_domain_accepts_inbound_mail_from_anyone(deployment) -> None:
    await asyncio.to_thread(deployment.send, "postmaster@examplecorp.com", source="127.0.0.5")
    (received,) = await deployment.sink.wait_for(1, timeout=20)
    assert received.recipient == "postmaster@examplecorp.com"


async def test_every_outcome_is_logged_to_local_logs(deployment) -> None:
    await asyncio.to_thread(deployment.send, "someone@yahoo.com", count=2)
    await deployment.sink.wait_for(2, timeout=20)
    # The sink has the data before kumocore has read its 250: the Delivery record comes
    # after that, so wait for it (segments in progress are readable) before closing.
    deadline = time.monotonic() + 20
    while len(deployment.records("Delivery")) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await deployment.server.runtime.services.logs.close(timeout=5)  # type: ignore[union-attr]
    receptions, deliveries = deployment.records("Reception"), deployment.records("Delivery")
    assert len(receptions) == 2 and len(deliveries) == 2
    delivery = deliveries[0]
    assert delivery["queue"] == "TenantOne@yahoo.com"
    assert delivery["site"].endswith("->(mta5|mta6|mta7).am0.yahoodns.net@smtp_client")
    assert delivery["egress_pool"] == "TenantOne"
    assert delivery["response"]["code"] == 250


async def test_gmail_site_is_shaped_to_three_connections_and_fifty_per_connection(
        deployment) -> None:
    total = 160
    await asyncio.gather(*(asyncio.to_thread(deployment.send, f"user{n}@gmail.com", count=40)
                           for n in range(4)))
    messages = await deployment.sink.wait_for(total, timeout=60)
    state = deployment.sink.state
    for source in TENANT_ONE_SOURCES:
        assert state.max_active[source] <= 3, dict(state.max_active)
    assert max(state.per_connection.values()) <= 50
    assert len(messages) == total


async def test_comcast_mail_is_paced_at_one_per_second_per_source(deployment) -> None:
    await asyncio.to_thread(deployment.send, "user@comcast.net", count=6)
    messages = await deployment.sink.wait_for(6, timeout=30)
    by_source: dict[str, list[float]] = collections.defaultdict(list)
    for received in messages:
        by_source[received.source_ip].append(received.at)
    # Round robin over three sources: each egress path carries two of the six messages.
    assert sorted(len(arrivals) for arrivals in by_source.values()) == [2, 2, 2]
    for arrivals in by_source.values():
        gaps = [b - a for a, b in itertools.pairwise(sorted(arrivals))]
        assert all(gap >= 0.9 for gap in gaps), gaps


async def test_http_injection_without_a_tenant_counts_as_failed(deployment) -> None:
    request = {"envelope_sender": "sender@examplecorp.com",
               "recipients": [{"email": "someone@gmail.com"}],
               "content": {"from": {"email": "sender@examplecorp.com"}, "subject": "hi",
                           "text_body": "hello"}}
    url = f"http://127.0.0.1:{deployment.ref.http_port}/api/inject/v1"
    async with aiohttp.ClientSession() as session, session.post(url, json=request) as response:
        body = await response.json()
    assert response.status == 200
    assert body["success_count"] == 0 and body["fail_count"] == 1
    assert body["failed_recipients"] == ["someone@gmail.com"]
