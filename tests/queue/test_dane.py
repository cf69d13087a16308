"""DANE end to end: the test DNS server publishes MX, A and TLSA records with or without
the AD bit, a real STARTTLS sink on 127.0.0.1 presents certificates from a private CA
(never trusted by the delivery client, so only TLSA can authenticate it), and the log
records show what was delivered and over what."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore.admin.metrics import registry_for, render_text
from tests.queue.harness import Bench, ShapingPolicy
from tests.support.dane import association, ca_cert, leaf_cert, server_context

MX = "mx.dane.example"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert(MX)


@pytest.fixture
async def tls_sink(leaf: trustme.LeafCert, ca: trustme.CA) -> AsyncIterator[RecordingSink]:
    async with RecordingSink(tls_context=server_context(leaf, ca)) as sink:
        yield sink


@pytest.fixture
def dane_dns() -> Any:
    zones = {
        "dane.example": {"MX": [(10, MX)], "SECURE": True},
        MX: {"A": ["127.0.0.1"], "SECURE": True},
    }
    with TestDnsServer(zones) as server:
        yield server


def _publish(dns: TestDnsServer, port: int, *records: tuple[int, int, int, str],
             secure: bool = True) -> str:
    name = f"_{port}._tcp.{MX}"
    dns.set_records(name, "TLSA", list(records))
    dns.set_secure(name, secure)
    return name


async def _deliver(dns: TestDnsServer, sink: RecordingSink, kind: str, *,
                   validate: bool = True, **path: Any) -> tuple[Bench, dict[str, Any]]:
    """Inject one message for dane.example; the first log record of ``kind``."""
    policy = ShapingPolicy(sink_port=sink.port, path={"enable_dane": True, **path})
    bench = Bench(policy, dns, sink)
    await bench.start()  # nothing is looked up before a message is injected
    bench.runtime.resolver.configure([dns.address], validate=validate)
    try:
        await bench.inject("rcpt@dane.example")
        records = await bench.wait_for_records(kind, 1)
    finally:
        await bench.stop()
    return bench, records[0]


async def test_matching_dane_ee_record_delivers_over_tls_with_a_secure_peer(
    dane_dns: TestDnsServer, tls_sink: RecordingSink, leaf: trustme.LeafCert,
) -> None:
    _publish(dane_dns, tls_sink.port, (3, 1, 1, association(leaf_cert(leaf), 1, 1)))
    bench, record = await _deliver(dane_dns, tls_sink, "Delivery")
    assert tls_sink.messages[0].tls
    assert record["peer_address"] == {"name": MX, "addr": "127.0.0.1", "is_secure": True}
    assert record["tls_cipher"] and record["tls_protocol_version"].startswith("TLS")
    assert record["tls_peer_subject_name"] == [
        a.rfc4514_string() for a in leaf_cert(leaf).subject]
    assert bench.queues.dane_counts["ok"] == 1
    metrics = render_text(registry_for(bench.runtime.services)).decode()
    assert 'dane_result_count{result="ok"} 1' in metrics
    assert 'dane_result_count{result="tempfail"} 0' in metrics


async def test_mismatching_dane_ee_record_defers_and_never_falls_back_to_plaintext(
    dane_dns: TestDnsServer, tls_sink: RecordingSink,
) -> None:
    name = _publish(dane_dns, tls_sink.port, (3, 1, 1, "ab" * 32))
    # Even a path that would otherwise accept any certificate and retry in clear text.
    _, record = await _deliver(dane_dns, tls_sink, "TransientFailure",
                               enable_tls="OpportunisticInsecure",
                               opportunistic_tls_reconnect_on_failed_handshake=True)
    assert tls_sink.messages == []
    content = record["response"]["content"]
    assert f"DANE: no TLSA record of {name} (3 1 1 abababababababab...) matched the " \
        f"certificate of {MX} [127.0.0.1]" in content
    # As KumoMTA: one of the reasons of a failed connection round (code 400, no
    # enhanced code), not a reply of the MX.
    assert content.startswith("KumoMTA internal: failed to connect to any candidate hosts: ")
    assert record["response"]["code"] == 400
    assert record["response"]["enhanced_code"] is None


async def test_tlsa_without_the_ad_bit_is_ignored_for_the_paths_opportunistic_tls(
    dane_dns: TestDnsServer, tls_sink: RecordingSink, ca: trustme.CA,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the path's own PKIX verification
    _publish(dane_dns, tls_sink.port, (3, 1, 1, "ab" * 32), secure=False)
    bench, record = await _deliver(dane_dns, tls_sink, "Delivery")
    assert tls_sink.messages[0].tls
    assert record["peer_address"]["is_secure"] is True  # the address was secure
    assert bench.queues.dane_counts["not_applicable"] == 1


async def test_insecure_mx_records_mean_no_dane_even_with_secure_tlsa(
    dane_dns: TestDnsServer, tls_sink: RecordingSink,
) -> None:
    dane_dns.set_secure("dane.example", False)
    _publish(dane_dns, tls_sink.port, (3, 1, 1, "ab" * 32))
    bench, record = await _deliver(
        dane_dns, tls_sink, "Delivery", enable_tls="OpportunisticInsecure")
    assert tls_sink.messages[0].tls
    assert "is_secure" not in record["peer_address"]
    assert bench.queues.dane_counts["insecure_chain"] == 1


async def test_dane_ta_record_of_the_servers_ca_delivers(
    dane_dns: TestDnsServer, tls_sink: RecordingSink, ca: trustme.CA,
) -> None:
    _publish(dane_dns, tls_sink.port, (2, 1, 1, association(ca_cert(ca), 1, 1)))
    _, record = await _deliver(dane_dns, tls_sink, "Delivery")
    assert tls_sink.messages[0].tls
    # As KumoMTA logs OpenSSL's DANE authority: the certificate that matched.
    assert record["tls_peer_subject_name"] == [a.rfc4514_string() for a in ca_cert(ca).subject]


async def test_dane_ta_record_of_another_ca_defers(
    dane_dns: TestDnsServer, tls_sink: RecordingSink,
) -> None:
    other = trustme.CA()
    _publish(dane_dns, tls_sink.port, (2, 1, 1, association(ca_cert(other), 1, 1)))
    _, record = await _deliver(dane_dns, tls_sink, "TransientFailure")
    assert tls_sink.messages == []
    assert "no DANE-TA record matches a certificate of the presented chain" in \
        record["response"]["content"]


async def test_servfail_on_the_tlsa_lookup_defers_and_sends_nothing(
    dane_dns: TestDnsServer, tls_sink: RecordingSink,
) -> None:
    name = _publish(dane_dns, tls_sink.port, (3, 1, 1, "ab" * 32))
    dane_dns.set_servfail(names=[name])
    bench, record = await _deliver(dane_dns, tls_sink, "TransientFailure")
    assert tls_sink.messages == [] and tls_sink.state.connections == 0
    assert record["response"]["code"] == 400
    assert record["response"]["enhanced_code"] is None
    assert record["response"]["content"] == (
        "KumoMTA internal: failed to connect to any candidate hosts: "
        f"connect to {MX} [127.0.0.1]:{tls_sink.port}: "
        f"DANE: TLSA lookup for {name}. failed: no name server could answer (SERVFAIL); "
        f"without a secure answer (records or their absence) {MX} is not tried")
    assert bench.queues.dane_counts["tempfail"] >= 1


async def test_only_unusable_records_require_starttls_without_checking_the_certificate(
    dane_dns: TestDnsServer, sink: RecordingSink, tls_sink: RecordingSink,
) -> None:
    # PKIX-EE (1) is unusable for SMTP (RFC 7672 §3.1.3): TLS becomes mandatory...
    _publish(dane_dns, sink.port, (1, 1, 1, "ab" * 32))
    _, record = await _deliver(dane_dns, sink, "TransientFailure")
    assert sink.messages == []
    assert "STARTTLS is not advertised" in record["response"]["content"]
    # ...but any certificate is accepted.
    _publish(dane_dns, tls_sink.port, (1, 1, 1, "ab" * 32))
    await _deliver(dane_dns, tls_sink, "Delivery")
    assert tls_sink.messages[0].tls


async def test_dane_without_a_validating_resolver_defers_with_the_reason(
    dane_dns: TestDnsServer, tls_sink: RecordingSink,
) -> None:
    # A Python policy building the path itself bypasses kumo.make_egress_path's refusal;
    # delivery still refuses to pretend.
    _, record = await _deliver(dane_dns, tls_sink, "TransientFailure", validate=False)
    assert tls_sink.messages == []
    assert "resolver is not marked as validating DNSSEC" in record["response"]["content"]



@pytest.mark.parametrize("alias_signed", [True, False])
async def test_a_signed_cname_into_an_unsigned_zone_keeps_dane_at_the_original_name(
    dane_dns: TestDnsServer, tls_sink: RecordingSink, alias_signed: bool,
) -> None:
    # mx.dane.example is a CNAME to a host in an unsigned zone: the address records are
    # not secure, but a signed alias still makes its TLSA records count (RFC 7672 §2.2.2).
    dane_dns.remove_name(MX)
    dane_dns.set_records(MX, "CNAME", ["host.unsigned.example"])
    dane_dns.set_secure(MX, alias_signed)
    dane_dns.set_records("host.unsigned.example", "A", ["127.0.0.1"])
    name = _publish(dane_dns, tls_sink.port, (3, 1, 1, "ab" * 32))
    kind = "TransientFailure" if alias_signed else "Delivery"
    bench, record = await _deliver(dane_dns, tls_sink, kind,
                                   enable_tls="OpportunisticInsecure")
    counts = bench.queues.dane_counts
    if alias_signed:
        assert f"DANE: no TLSA record of {name}" in record["response"]["content"]
        assert tls_sink.messages == [] and counts["ok"] >= 1
    else:
        assert tls_sink.messages[0].tls and counts["insecure_chain"] == 1
        assert "is_secure" not in record["peer_address"]


@pytest.mark.parametrize("trusted", [True, False])
async def test_an_mx_list_gets_dane_only_when_treated_as_secure(
    dane_dns: TestDnsServer, tls_sink: RecordingSink, trusted: bool,
) -> None:
    # No MX lookup authenticates an mx_list: the operator vouches for it (or not).
    _publish(dane_dns, tls_sink.port, (3, 1, 1, "ab" * 32))
    policy = ShapingPolicy(
        sink_port=tls_sink.port,
        path={"enable_dane": True, "enable_tls": "OpportunisticInsecure"},
        queue={"protocol": {"smtp": {"mx_list": [MX], "treat_mx_list_as_secure": trusted}}})
    bench = Bench(policy, dane_dns, tls_sink)
    await bench.start()
    bench.runtime.resolver.configure([dane_dns.address], validate=True)
    try:
        await bench.inject("rcpt@elsewhere.example")
        record = (await bench.wait_for_records(
            "TransientFailure" if trusted else "Delivery", 1))[0]
    finally:
        await bench.stop()
    counts = bench.queues.dane_counts
    if trusted:
        assert "DANE: no TLSA record of" in record["response"]["content"]
        assert tls_sink.messages == [] and counts["ok"] >= 1
    else:
        assert tls_sink.messages[0].tls and counts["insecure_chain"] == 1
