"""The loopback test DNS server answers like a real one, from plain synchronous code too."""

from __future__ import annotations

from dnslib import RCODE, DNSRecord

from bench.common.dns_server import TestDnsServer, add_dkim_txt, reference_zones


def ask(server: TestDnsServer, name: str, qtype: str, *, tcp: bool = False) -> DNSRecord:
    reply = DNSRecord.question(name, qtype).send("127.0.0.1", server.port, tcp=tcp, timeout=2)
    return DNSRecord.parse(reply)


def test_unknown_name_is_nxdomain_and_known_name_without_type_is_nodata() -> None:
    with TestDnsServer(reference_zones()) as server:
        assert ask(server, "nope.example", "MX").header.rcode == RCODE.NXDOMAIN
        nodata = ask(server, "gmail.com", "TXT")
        assert (nodata.header.rcode, nodata.rr) == (RCODE.NOERROR, [])


def test_tcp_answers_the_same_records_as_udp() -> None:
    with TestDnsServer(reference_zones("192.0.2.5")) as server:
        udp = ask(server, "MTA6.am0.yahoodns.net.", "A")
        tcp = ask(server, "mta6.am0.yahoodns.net", "A", tcp=True)
        assert [str(rr.rdata) for rr in udp.rr] == [str(rr.rdata) for rr in tcp.rr] == ["192.0.2.5"]


def test_reference_zones_use_aaaa_for_an_ipv6_mx_address() -> None:
    zones = reference_zones("::1")
    assert zones["mx1a1.comcast.net"] == {"AAAA": ["::1"]}


def test_servfail_mode_and_runtime_changes_apply_immediately() -> None:
    zones = add_dkim_txt(reference_zones(), "s1", "ExampleCorp.com.", "MIIBIjAN")
    with TestDnsServer(zones, servfail=True) as server:
        assert ask(server, "gmail.com", "MX").header.rcode == RCODE.SERVFAIL
        server.set_servfail(False)
        txt = ask(server, "s1._domainkey.examplecorp.com", "TXT")
        assert [str(rr.rdata) for rr in txt.rr] == ['"v=DKIM1; k=rsa; p=MIIBIjAN"']
        server.remove_name("gmail.com")
        assert ask(server, "gmail.com", "MX").header.rcode == RCODE.NXDOMAIN
        assert server.query_count("gmail.com", "MX") == 2
        assert [q[1] for q in server.queries] == ["MX", "TXT", "MX"]
